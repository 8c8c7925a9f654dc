#include "agent/ingress/proxy_headers.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>
#include <string>

namespace skiff::ingress::proxy {
namespace {

std::string Get(const http::fields& f, const char* name) {
  auto it = f.find(name);
  return it == f.end() ? "<none>" : std::string(it->value());
}

// What Beast's own serializer writes for the header of `message` (an empty body: the header
// only).
template <bool kIsRequest>
std::string BeastHead(const http::message<kIsRequest, http::empty_body>& message) {
  std::ostringstream out;
  out << message;
  return out.str();
}

TEST(ProxyHeadersTest, FormatRequestHeadWritesWhatBeastsSerializerWrites) {
  std::string head;
  http::request<http::empty_body> get{http::verb::get, "/a/b?c=d&e", 11};
  get.insert("Host", "svc.skiff.local");
  get.insert("X-Forwarded-For", "10.0.0.1, 127.0.0.1");
  get.insert("x-lower-case", "kept as received");
  get.insert("X-Empty", "");
  FormatRequestHead(get, &head);
  EXPECT_EQ(head, BeastHead(get));
  EXPECT_EQ(head,
            "GET /a/b?c=d&e HTTP/1.1\r\nHost: svc.skiff.local\r\n"
            "X-Forwarded-For: 10.0.0.1, 127.0.0.1\r\nx-lower-case: kept as received\r\n"
            "X-Empty: \r\n\r\n");
  // An unknown method keeps its spelling; the buffer is reused, not appended to.
  http::request<http::empty_body> purge;
  purge.method_string("PURGE");
  purge.target("*");
  purge.version(11);
  purge.insert("Content-Length", "0");
  FormatRequestHead(purge, &head);
  EXPECT_EQ(head, BeastHead(purge));
  EXPECT_EQ(head, "PURGE * HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  // No fields at all.
  http::request<http::empty_body> bare{http::verb::head, "/", 11};
  FormatRequestHead(bare, &head);
  EXPECT_EQ(head, "HEAD / HTTP/1.1\r\n\r\n");
}

TEST(ProxyHeadersTest, FormatResponseHeadWritesWhatBeastsSerializerWrites) {
  std::string head;
  http::response<http::empty_body> ok{http::status::ok, 11};
  ok.insert("Content-Length", "3");
  ok.insert("content-type", "text/plain");
  FormatResponseHead(ok, &head);
  EXPECT_EQ(head, BeastHead(ok));
  EXPECT_EQ(head, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\ncontent-type: text/plain\r\n\r\n");
  // A reason of the backend's own, HTTP/1.0, and a code Beast has no name for.
  http::response<http::empty_body> custom{http::status::not_found, 10};
  custom.reason("Nothing Here");
  FormatResponseHead(custom, &head);
  EXPECT_EQ(head, BeastHead(custom));
  EXPECT_EQ(head, "HTTP/1.0 404 Nothing Here\r\n\r\n");
  http::response<http::empty_body> odd;
  odd.result(299);
  odd.version(11);
  FormatResponseHead(odd, &head);
  EXPECT_EQ(head, BeastHead(odd));
}

TEST(ProxyHeadersTest, StripsHopByHopAndFieldsNamedByConnection) {
  http::fields f;
  f.insert("Connection", "close, X-Foo");
  f.insert("Connection", "x-baz");
  f.insert("X-Foo", "1");
  f.insert("X-Baz", "2");
  f.insert("X-Keep", "3");
  f.insert("Keep-Alive", "timeout=5");
  f.insert("TE", "trailers");
  f.insert("Trailer", "X-T");
  f.insert("Transfer-Encoding", "chunked");
  f.insert("Upgrade", "websocket");
  f.insert("Proxy-Connection", "keep-alive");
  f.insert("Proxy-Authenticate", "Basic");
  f.insert("Proxy-Authorization", "Basic eA==");
  StripHopByHop(f, /*keep_upgrade=*/false);
  for (const char* gone :
       {"Connection", "X-Foo", "X-Baz", "Keep-Alive", "TE", "Trailer", "Transfer-Encoding",
        "Upgrade", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization"}) {
    EXPECT_EQ(Get(f, gone), "<none>") << gone;
  }
  EXPECT_EQ(Get(f, "X-Keep"), "3");
}

TEST(ProxyHeadersTest, UpgradeKeptForAProtocolSwitch) {
  http::fields f;
  f.insert("Connection", "keep-alive, Upgrade");
  f.insert("Upgrade", "websocket");
  f.insert("Sec-WebSocket-Key", "abc");
  ASSERT_TRUE(WantsUpgrade(f));
  StripHopByHop(f, /*keep_upgrade=*/true);
  EXPECT_EQ(Get(f, "Upgrade"), "websocket");
  EXPECT_EQ(Get(f, "Connection"), "upgrade");
  EXPECT_EQ(Get(f, "Sec-WebSocket-Key"), "abc");

  http::fields plain;
  plain.insert("Upgrade", "websocket");  // no "upgrade" token in Connection
  EXPECT_FALSE(WantsUpgrade(plain));
}

TEST(ProxyHeadersTest, H2cUpgradeKeepsHttp2Settings) {
  http::fields f;
  f.insert("Connection", "Upgrade, HTTP2-Settings, X-Foo");
  f.insert("Upgrade", "h2c");
  f.insert("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA");
  f.insert("X-Foo", "1");
  ASSERT_TRUE(WantsUpgrade(f));
  StripHopByHop(f, /*keep_upgrade=*/true);
  EXPECT_EQ(Get(f, "Connection"), "upgrade, HTTP2-Settings");
  EXPECT_EQ(Get(f, "HTTP2-Settings"), "AAMAAABkAARAAAAAAAIAAAAA");
  EXPECT_EQ(Get(f, "X-Foo"), "<none>");
  // Not an upgrade being forwarded: HTTP2-Settings is hop-by-hop like any named field.
  http::fields g;
  g.insert("Connection", "HTTP2-Settings");
  g.insert("HTTP2-Settings", "x");
  StripHopByHop(g, /*keep_upgrade=*/false);
  EXPECT_EQ(Get(g, "HTTP2-Settings"), "<none>");
}

TEST(ProxyHeadersTest, ForwardedHeadersAppendClientAddress) {
  http::fields f;
  f.insert("Host", "svc.skiff.local:8080");
  f.insert("X-Forwarded-For", "10.0.0.1");
  f.insert("X-Other", "x");
  f.insert("X-Forwarded-For", "10.0.0.2");
  f.insert("X-Forwarded-Proto", "https");
  SetForwardedHeaders(f, "127.0.0.1");
  EXPECT_EQ(Get(f, "X-Forwarded-For"), "10.0.0.1, 10.0.0.2, 127.0.0.1");
  EXPECT_EQ(f.count("X-Forwarded-For"), 1u);
  EXPECT_EQ(Get(f, "X-Forwarded-Proto"), "http");
  EXPECT_EQ(Get(f, "X-Forwarded-Host"), "svc.skiff.local:8080");

  http::fields bare;
  SetForwardedHeaders(bare, "192.0.2.7");
  EXPECT_EQ(Get(bare, "X-Forwarded-For"), "192.0.2.7");
  EXPECT_EQ(Get(bare, "X-Forwarded-Host"), "<none>");
}

}  // namespace
}  // namespace skiff::ingress::proxy
