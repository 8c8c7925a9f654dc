// Instance networking over rtnetlink (privileged). The whole binary first moves into a
// private network namespace that plays the host's role, so nothing it does can touch the
// real host's links or collide with other tests; "instance" netns are children of it.

#include "sandbox/common/net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "sandbox/common/unique_fd.h"
#include "tests/support/status_matchers.h"

namespace skiff {
namespace {

using ::skiff::testing::IsOk;
using ::skiff::testing::StatusIs;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

constexpr char kHostIp[] = "10.200.0.0";
constexpr char kInstanceIp[] = "10.200.0.1";
constexpr uint16_t kInstancePort = 8080;

uint32_t Ip(const char* s) {
  in_addr a{};
  inet_pton(AF_INET, s, &a);
  return a.s_addr;
}

bool WriteAll(int fd, const void* p, size_t n) {
  return write(fd, p, n) == static_cast<ssize_t>(n);
}
// Reads exactly n bytes with a timeout; false on timeout, EOF or error.
bool ReadFull(int fd, void* p, size_t n, int timeout_ms = 5000) {
  char* c = static_cast<char*>(p);
  size_t got = 0;
  while (got < n) {
    pollfd pfd{fd, POLLIN, 0};
    if (poll(&pfd, 1, timeout_ms) != 1) return false;
    ssize_t r = read(fd, c + got, n - got);
    if (r <= 0) return false;
    got += static_cast<size_t>(r);
  }
  return true;
}

// A child process in its own network namespace. It reports readiness, then runs the
// steps the parent asks for over a pipe; it exits when the parent closes that pipe.
class NetnsChild {
 public:
  enum Cmd : char { kConfigure = 'c', kServeAndDial = 's' };

  NetnsChild() {
    int to[2], from[2];
    if (pipe2(to, O_CLOEXEC) || pipe2(from, O_CLOEXEC)) return;
    pid_ = fork();
    if (pid_ == 0) {
      to_.Reset(to[0]);
      from_.Reset(from[1]);
      UniqueFd{to[1]}.Reset();
      UniqueFd{from[0]}.Reset();
      _exit(Run());
    }
    to_.Reset(to[1]);
    from_.Reset(from[0]);
    UniqueFd{to[0]}.Reset();
    UniqueFd{from[1]}.Reset();
    char r = 0;
    ready_ = ReadFull(from_.get(), &r, 1) && r == 'r';
  }
  ~NetnsChild() { Stop(); }

  pid_t pid() const { return pid_; }
  bool ready() const { return ready_; }

  // Runs ConfigureInstanceNetwork(ifname, ...) in the child; returns its result.
  int Configure(const char* ifname) {
    char buf[1 + 16] = {kConfigure};
    strncpy(buf + 1, ifname, 15);
    if (!WriteAll(to_.get(), buf, sizeof(buf))) return -1;
    int err = -1;
    if (!ReadFull(from_.get(), &err, sizeof(err))) return -1;
    return err;
  }
  // The child listens on instance_ip:8080, answers "ping" with "pong", then dials
  // host_ip:host_port and sends "hello". Returns once the child listens.
  bool StartServeAndDial(uint16_t host_port) {
    char buf[3] = {kServeAndDial};
    memcpy(buf + 1, &host_port, 2);
    if (!WriteAll(to_.get(), buf, sizeof(buf))) return false;
    char l = 0;
    return ReadFull(from_.get(), &l, 1) && l == 'l';
  }
  // Result of the dial back ('d' = sent hello).
  char DialResult() {
    char d = 0;
    ReadFull(from_.get(), &d, 1);
    return d;
  }
  void Stop() {
    to_.Reset();
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }

 private:
  int Run() {
    if (unshare(CLONE_NEWNET) != 0) return 10;
    if (!WriteAll(from_.get(), "r", 1)) return 11;
    for (;;) {
      char cmd;
      if (read(to_.get(), &cmd, 1) != 1) return 0;
      if (cmd == kConfigure) {
        char name[16] = {};
        if (!ReadFull(to_.get(), name, sizeof(name))) return 12;
        int err = ConfigureInstanceNetwork(name, Ip(kInstanceIp), Ip(kHostIp), 31);
        if (!WriteAll(from_.get(), &err, sizeof(err))) return 13;
      } else if (cmd == kServeAndDial) {
        uint16_t host_port;
        if (!ReadFull(to_.get(), &host_port, 2)) return 14;
        ServeAndDial(host_port);
      }
    }
  }
  void ServeAndDial(uint16_t host_port) {
    UniqueFd ls(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int one = 1;
    setsockopt(ls.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(kInstancePort);
    a.sin_addr.s_addr = Ip(kInstanceIp);
    if (bind(ls.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) || listen(ls.get(), 4)) {
      WriteAll(from_.get(), "x", 1);
      return;
    }
    WriteAll(from_.get(), "l", 1);
    UniqueFd c(accept4(ls.get(), nullptr, nullptr, SOCK_CLOEXEC));
    char ping[4];
    if (c && ReadFull(c.get(), ping, 4) && memcmp(ping, "ping", 4) == 0)
      WriteAll(c.get(), "pong", 4);
    UniqueFd d(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in h{};
    h.sin_family = AF_INET;
    h.sin_port = host_port;  // already network order
    h.sin_addr.s_addr = Ip(kHostIp);
    const bool sent = connect(d.get(), reinterpret_cast<sockaddr*>(&h), sizeof(h)) == 0 &&
                      WriteAll(d.get(), "hello", 5);
    WriteAll(from_.get(), sent ? "d" : "f", 1);
  }

  pid_t pid_ = -1;
  bool ready_ = false;
  UniqueFd to_, from_;
};

class NetTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Play "host" in a private netns (see the file comment).
    ASSERT_EQ(unshare(CLONE_NEWNET), 0) << strerror(errno);
  }
  void SetUp() override { host_if_ = absl::StrCat("skt", getpid() % 100000, "-", ++counter_); }
  void TearDown() override {
    DeleteLink(host_if_).IgnoreError();
    EXPECT_THAT(LinkExists(host_if_), ::testing::AllOf(IsOk()));
  }
  VethConfig Cfg() {
    return VethConfig{.host_ifname = host_if_, .host_ip = kHostIp, .instance_ip = kInstanceIp};
  }
  // Polls until the link is gone (netns teardown is asynchronous).
  bool WaitLinkGone(const std::string& name, std::chrono::milliseconds limit) {
    for (auto t0 = Clock::now(); Clock::now() - t0 < limit;) {
      absl::StatusOr<bool> e = LinkExists(name);
      if (e.ok() && !*e) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  std::string host_if_;
  static inline int counter_ = 0;
};

TEST_F(NetTest, VethCarriesTcpBothWaysAndVanishesWithTheNetns) {
  NetnsChild child;
  ASSERT_TRUE(child.ready());
  auto t0 = Clock::now();
  SKIFF_ASSERT_OK(CreateVethPair(Cfg(), child.pid()));
  auto t1 = Clock::now();
  EXPECT_THAT(LinkExists(host_if_), ::testing::AllOf(IsOk()));
  ASSERT_TRUE(*LinkExists(host_if_));
  EXPECT_FALSE(*LinkExists("eth0"));  // the peer went straight into the child's netns
  ASSERT_EQ(child.Configure("eth0"), 0);
  auto t2 = Clock::now();
  std::printf("CreateVethPair %lld us, ConfigureInstanceNetwork %lld us\n",
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::microseconds>(t1 - t0).count()),
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::microseconds>(t2 - t1).count()));

  // Host listener for the dial back.
  UniqueFd hl(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in ha{};
  ha.sin_family = AF_INET;
  ha.sin_addr.s_addr = Ip(kHostIp);
  ASSERT_EQ(bind(hl.get(), reinterpret_cast<sockaddr*>(&ha), sizeof(ha)), 0) << strerror(errno);
  ASSERT_EQ(listen(hl.get(), 4), 0);
  socklen_t hlen = sizeof(ha);
  ASSERT_EQ(getsockname(hl.get(), reinterpret_cast<sockaddr*>(&ha), &hlen), 0);
  ASSERT_TRUE(child.StartServeAndDial(ha.sin_port));

  // Host → instance.
  UniqueFd c(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in ia{};
  ia.sin_family = AF_INET;
  ia.sin_port = htons(kInstancePort);
  ia.sin_addr.s_addr = Ip(kInstanceIp);
  ASSERT_EQ(connect(c.get(), reinterpret_cast<sockaddr*>(&ia), sizeof(ia)), 0) << strerror(errno);
  ASSERT_TRUE(WriteAll(c.get(), "ping", 4));
  char pong[4] = {};
  ASSERT_TRUE(ReadFull(c.get(), pong, 4));
  EXPECT_EQ(std::string(pong, 4), "pong");

  // Instance → host, via the default route's gateway.
  pollfd pfd{hl.get(), POLLIN, 0};
  ASSERT_EQ(poll(&pfd, 1, 5000), 1);
  UniqueFd back(accept4(hl.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(back.valid());
  char hello[5] = {};
  ASSERT_TRUE(ReadFull(back.get(), hello, 5));
  EXPECT_EQ(std::string(hello, 5), "hello");
  EXPECT_EQ(child.DialResult(), 'd');

  // The netns dies with its last process and takes both ends of the pair with it.
  child.Stop();
  auto t3 = Clock::now();
  EXPECT_TRUE(WaitLinkGone(host_if_, std::chrono::seconds(5)));
  std::printf(
      "host end gone %lld ms after the netns holder died\n",
      static_cast<long long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t3).count()));
}

TEST_F(NetTest, DeleteLinkRemovesThePairAndThenIsNotFound) {
  NetnsChild child;
  ASSERT_TRUE(child.ready());
  SKIFF_ASSERT_OK(CreateVethPair(Cfg(), child.pid()));
  EXPECT_THAT(CreateVethPair(Cfg(), child.pid()),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr(host_if_)));
  ASSERT_TRUE(*LinkExists(host_if_));  // the failed duplicate did not remove the original
  SKIFF_ASSERT_OK(DeleteLink(host_if_));
  EXPECT_FALSE(*LinkExists(host_if_));
  EXPECT_THAT(DeleteLink(host_if_), StatusIs(absl::StatusCode::kNotFound, HasSubstr(host_if_)));
  // Deleting the host end removed the peer too: the child has nothing to configure.
  EXPECT_EQ(child.Configure("eth0"), ENODEV);
}

TEST_F(NetTest, ConfigureMissingInterfaceIsEnodevAndBadArgsEinval) {
  NetnsChild child;
  ASSERT_TRUE(child.ready());
  EXPECT_EQ(child.Configure("nope0"), ENODEV);
  EXPECT_EQ(ConfigureInstanceNetwork(nullptr, 1, 2, 31), EINVAL);
  EXPECT_EQ(ConfigureInstanceNetwork("eth0", 1, 2, 0), EINVAL);
  EXPECT_EQ(ConfigureInstanceNetwork("0123456789abcdefg", 1, 2, 31), EINVAL);
}

TEST_F(NetTest, NonexistentNetnsPidLeavesNothing) {
  pid_t gone = fork();
  if (gone == 0) _exit(0);
  ASSERT_GT(gone, 0);
  waitpid(gone, nullptr, 0);
  EXPECT_THAT(CreateVethPair(Cfg(), gone),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(absl::StrCat("pid ", gone))));
  EXPECT_FALSE(*LinkExists(host_if_));
}

TEST_F(NetTest, BadConfigIsInvalidArgumentNamingTheField) {
  NetnsChild child;
  ASSERT_TRUE(child.ready());
  struct Case {
    VethConfig cfg;
    const char* field;
  };
  const VethConfig good = Cfg();
  auto with = [&](auto f) {
    VethConfig c = good;
    f(c);
    return c;
  };
  const Case cases[] = {
      {with([](VethConfig& c) { c.host_ifname = ""; }), "host_ifname"},
      {with([](VethConfig& c) { c.host_ifname = "0123456789abcdef"; }), "host_ifname"},
      {with([](VethConfig& c) { c.host_ifname = "a/b"; }), "host_ifname"},
      {with([](VethConfig& c) { c.host_ifname = "a b"; }), "host_ifname"},
      {with([](VethConfig& c) { c.instance_ifname = ".."; }), "instance_ifname"},
      {with([](VethConfig& c) { c.host_ip = "10.200.0.256"; }), "host_ip"},
      {with([](VethConfig& c) { c.host_ip = ""; }), "host_ip"},
      {with([](VethConfig& c) { c.instance_ip = "10.200.0"; }), "instance_ip"},
      {with([](VethConfig& c) { c.instance_ip = "::1"; }), "instance_ip"},
      {with([](VethConfig& c) { c.instance_ip = kHostIp; }), "instance_ip"},
      {with([](VethConfig& c) { c.instance_ip = "10.200.0.2"; }), "instance_ip"},  // other /31
      {with([](VethConfig& c) { c.prefix_len = 0; }), "prefix_len"},
      {with([](VethConfig& c) { c.prefix_len = 32; }), "prefix_len"},
  };
  for (const Case& k : cases) {
    EXPECT_THAT(CreateVethPair(k.cfg, child.pid()),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(k.field)))
        << k.field << " host_ifname=" << k.cfg.host_ifname;
    EXPECT_FALSE(*LinkExists(host_if_));
  }
  EXPECT_THAT(CreateVethPair(good, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("netns_pid")));
  EXPECT_THAT(LinkExists("bad/name"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseIpv4("1.2.3.4"), ::testing::AllOf(IsOk()));
  EXPECT_EQ(*ParseIpv4("10.200.0.1"), Ip("10.200.0.1"));
  EXPECT_THAT(ParseIpv4("1.2.3.4 "),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("1.2.3.4 ")));
}

// Pool routes. The fixture's netns (private, see NetTest) gets a default route through a
// veth whose far end is in this same netns, so unrouted traffic really has somewhere to
// go: a non-blocking connect() then answers EINPROGRESS (the SYN went out). With the
// pool's unreachable route it must fail at once instead.
class RouteTest : public NetTest {
 protected:
  static constexpr char kPool[] = "10.203.0.0/24";
  void SetUp() override {
    NetTest::SetUp();
    uplink_ = absl::StrCat("rtu", getpid() % 100000);
    instance_if_ = absl::StrCat("rti", getpid() % 100000);
    // Both ends here: "uplink" addressed 10.202.0.0/31, its peer gets the default route.
    VethConfig up{.host_ifname = uplink_,
                  .host_ip = "10.202.0.0",
                  .instance_ip = "10.202.0.1",
                  .instance_ifname = absl::StrCat(uplink_, "p")};
    ASSERT_THAT(CreateVethPair(up, getpid()), IsOk());
    ASSERT_EQ(ConfigureInstanceNetwork(up.instance_ifname.c_str(), Ip("10.202.0.1"),
                                       Ip("10.202.0.0"), 31),
              0);
    // An assigned pool pair: its /31 is more specific than the pool's route.
    VethConfig pair{.host_ifname = instance_if_,
                    .host_ip = "10.203.0.4",
                    .instance_ip = "10.203.0.5",
                    .instance_ifname = absl::StrCat(instance_if_, "p")};
    ASSERT_THAT(CreateVethPair(pair, getpid()), IsOk());
  }
  void TearDown() override {
    DeleteRoute(kPool).IgnoreError();
    DeleteLink(uplink_).IgnoreError();
    DeleteLink(instance_if_).IgnoreError();
    NetTest::TearDown();
  }
  // Non-blocking connect to ip:80: 0 on success, else the errno (EINPROGRESS: sent).
  static int Connect(const char* ip) {
    UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(80);
    addr.sin_addr.s_addr = Ip(ip);
    return connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 ? 0 : errno;
  }
  static int CountRoutes(const std::string& dst, const std::string& type) {
    absl::StatusOr<std::vector<RouteInfo>> routes = ListRoutes();
    EXPECT_THAT(routes.status(), IsOk());
    if (!routes.ok()) return -1;
    int n = 0;
    for (const RouteInfo& r : *routes) n += r.dst == dst && r.type == type;
    return n;
  }
  std::string uplink_, instance_if_;
};

TEST_F(RouteTest, UnreachablePoolRouteFailsUnassignedAddressesAtOnce) {
  ASSERT_EQ(CountRoutes("0.0.0.0/0", "unicast"), 1);
  // Without it, pool traffic follows the default route.
  EXPECT_EQ(Connect("10.203.0.77"), EINPROGRESS);

  ASSERT_THAT(AddUnreachableRoute(kPool), IsOk());
  ASSERT_THAT(AddUnreachableRoute(kPool), IsOk());  // idempotent: replaced, not doubled
  EXPECT_EQ(CountRoutes(kPool, "unreachable"), 1);
  const auto t0 = Clock::now();
  const int err = Connect("10.203.0.77");
  EXPECT_TRUE(err == EHOSTUNREACH || err == ENETUNREACH) << strerror(err);
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(100));
  // An exited instance's address (pair gone) is unassigned again: also refused.
  EXPECT_THAT(DeleteLink(instance_if_), IsOk());
  const int gone = Connect("10.203.0.5");
  EXPECT_TRUE(gone == EHOSTUNREACH || gone == ENETUNREACH) << strerror(gone);
  // Outside the pool the default route still works.
  EXPECT_EQ(Connect("10.204.0.9"), EINPROGRESS);

  ASSERT_THAT(DeleteRoute(kPool), IsOk());
  EXPECT_EQ(CountRoutes(kPool, "unreachable"), 0);
  EXPECT_EQ(Connect("10.203.0.77"), EINPROGRESS);
  EXPECT_THAT(DeleteRoute(kPool), StatusIs(absl::StatusCode::kNotFound, HasSubstr(kPool)));
}

TEST_F(RouteTest, AssignedPairsAreMoreSpecificThanThePoolRoute) {
  ASSERT_THAT(AddUnreachableRoute(kPool), IsOk());
  EXPECT_EQ(CountRoutes("10.203.0.4/31", "unicast"), 1);
  EXPECT_EQ(Connect("10.203.0.5"), EINPROGRESS);  // via the pair's veth
  const int err = Connect("10.203.0.6");
  EXPECT_TRUE(err == EHOSTUNREACH || err == ENETUNREACH) << strerror(err);
}

TEST_F(RouteTest, BadCidrsAreInvalidArgumentNamingTheInput) {
  for (const char* bad : {"", "10.0.0.0", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.1/24",
                          "10.0.0/24", "x/8", "10.0.0.0/8/8", "10.0.0.0/ 8", "::/0"}) {
    EXPECT_THAT(AddUnreachableRoute(bad), StatusIs(absl::StatusCode::kInvalidArgument,
                                                   HasSubstr(absl::StrCat("\"", bad, "\""))))
        << bad;
    EXPECT_THAT(DeleteRoute(bad), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
  // Never a default route.
  EXPECT_THAT(AddUnreachableRoute("0.0.0.0/0"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("default route")));
  EXPECT_EQ(CountRoutes("0.0.0.0/0", "unreachable"), 0);
  SKIFF_ASSERT_OK_AND_ASSIGN(Ipv4Cidr c, ParseCidr("10.88.0.0/16"));
  EXPECT_EQ(c.addr_be, Ip("10.88.0.0"));
  EXPECT_EQ(c.prefix_len, 16u);
}

}  // namespace
}  // namespace skiff
