// UpstreamPool: LIFO reuse, the bound, and when a taken connection is checked live (MSG_PEEK)
// — always for a request that cannot be resent, and for any request once the connection has
// been idle for kUncheckedReuse. Loopback sockets only.

#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

#include "agent/ingress/proxy_upstream_pool.h"

namespace skiff::ingress::proxy {
namespace {

// Connected loopback pairs: the pool holds the client end, the test plays the backend.
class UpstreamPoolTest : public ::testing::Test {
 protected:
  UpstreamPoolTest() : acceptor_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {}

  // A connected client socket; its server end is kept in servers_.
  Socket Connect() {
    Socket client(ioc_);
    client.connect(acceptor_.local_endpoint());
    servers_.push_back(acceptor_.accept());
    return client;
  }
  Socket& server(size_t i) { return servers_.at(i); }

  asio::io_context ioc_;
  Acceptor acceptor_;
  std::vector<Socket> servers_;
};

TEST_F(UpstreamPoolTest, TakesTheMostRecentlyReturnedConnectionFirst) {
  UpstreamPool pool(8, std::chrono::seconds(60));
  Socket a = Connect();
  Socket b = Connect();
  const auto b_port = b.local_endpoint().port();
  pool.Put("x:1", std::move(a));
  pool.Put("x:1", std::move(b));
  EXPECT_EQ(pool.idle_count(), 2u);
  std::optional<Socket> got = pool.Take("x:1", /*resendable=*/false);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->local_endpoint().port(), b_port);
  EXPECT_FALSE(pool.Take("y:1", true).has_value());
  EXPECT_EQ(pool.idle_count(), 1u);
}

TEST_F(UpstreamPoolTest, BoundClosesTheOldest) {
  UpstreamPool pool(1, std::chrono::seconds(60));
  pool.Put("x:1", Connect());
  pool.Put("x:1", Connect());
  EXPECT_EQ(pool.idle_count(), 1u);
  // The first connection was closed by the pool: its server end reads EOF.
  char c;
  error_code ec;
  server(0).read_some(asio::buffer(&c, 1), ec);
  EXPECT_EQ(ec, asio::error::eof);
}

TEST_F(UpstreamPoolTest, ConnectionClosedByTheBackendIsDroppedWhenTheRequestCannotBeResent) {
  UpstreamPool pool(8, std::chrono::seconds(60));
  pool.Put("x:1", Connect());
  server(0).close();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the FIN arrives
  EXPECT_FALSE(pool.Take("x:1", /*resendable=*/false).has_value());
  EXPECT_EQ(pool.idle_count(), 0u);
}

TEST_F(UpstreamPoolTest, ConnectionWithStrayBytesIsDroppedWhenTheRequestCannotBeResent) {
  UpstreamPool pool(8, std::chrono::seconds(60));
  pool.Put("x:1", Connect());
  asio::write(server(0), asio::buffer("HTTP/1.1 408 Request Timeout\r\n\r\n", 33));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(pool.Take("x:1", /*resendable=*/false).has_value());
}

TEST_F(UpstreamPoolTest, RecentlyIdleConnectionIsTakenUncheckedForAResendableRequest) {
  UpstreamPool pool(8, std::chrono::seconds(60));
  pool.Put("x:1", Connect());
  server(0).close();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  // Not checked: the caller finds the close at its first read and resends.
  std::optional<Socket> got = pool.Take("x:1", /*resendable=*/true);
  ASSERT_TRUE(got.has_value());
  char c;
  error_code ec;
  got->read_some(asio::buffer(&c, 1), ec);
  EXPECT_EQ(ec, asio::error::eof);
}

TEST_F(UpstreamPoolTest, LongIdleConnectionIsCheckedEvenForAResendableRequest) {
  UpstreamPool pool(8, std::chrono::seconds(60));
  pool.Put("x:1", Connect());
  pool.Put("x:1", Connect());
  asio::write(server(1), asio::buffer("HTTP/1.1 408 Request Timeout\r\n\r\n", 33));
  std::this_thread::sleep_for(UpstreamPool::kUncheckedReuse + std::chrono::milliseconds(100));
  // The newer connection wrote unasked: dropped; the older one is still good.
  std::optional<Socket> got = pool.Take("x:1", /*resendable=*/true);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->remote_endpoint(), servers_[0].local_endpoint());
  EXPECT_EQ(pool.idle_count(), 0u);
}

TEST_F(UpstreamPoolTest, IdleTimeoutDropsOnTakeAndSweep) {
  UpstreamPool pool(8, std::chrono::milliseconds(50));
  pool.Put("x:1", Connect());
  pool.Put("y:1", Connect());
  std::this_thread::sleep_for(std::chrono::milliseconds(80));
  EXPECT_FALSE(pool.Take("x:1", true).has_value());
  EXPECT_EQ(pool.idle_count(), 1u);
  pool.Sweep();
  EXPECT_EQ(pool.idle_count(), 0u);
}

}  // namespace
}  // namespace skiff::ingress::proxy
