// skiff-testapp run natively on a free loopback port: every endpoint over real sockets,
// keep-alive, streaming with flat memory, WebSocket, CPU work, the busy thread, the startup
// burn and SIGTERM (draining a request in flight, or exiting at once). Also the SHA-1 and
// base64 the handshake is built on, against published vectors.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "sandbox/common/unique_fd.h"
#include "tests/payloads/testapp/base64.h"
#include "tests/payloads/testapp/sha1.h"
#include "tests/payloads/testapp/websocket.h"

namespace skiff::testapp {
namespace {

using Clock = std::chrono::steady_clock;

std::string Hex(const std::array<uint8_t, 20>& d) {
  static const char* k = "0123456789abcdef";
  std::string s;
  for (uint8_t b : d) {
    s += k[b >> 4];
    s += k[b & 15];
  }
  return s;
}

TEST(Sha1Test, PublishedVectors) {
  EXPECT_EQ(Hex(Sha1("")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  EXPECT_EQ(Hex(Sha1("abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(Hex(Sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  EXPECT_EQ(Hex(Sha1(std::string(1000000, 'a'))), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
}

TEST(Base64Test, Rfc4648Vectors) {
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("foo"), "Zm9v");
  EXPECT_EQ(Base64Encode("foob"), "Zm9vYg==");
  EXPECT_EQ(Base64Encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
}

TEST(WebSocketTest, AcceptOfRfc6455Example) {
  EXPECT_EQ(WebSocketAccept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

int FreePort() {
  UniqueFd s(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return -1;
  socklen_t len = sizeof(a);
  getsockname(s.get(), reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

std::string BinaryPath() {
  const char* b = getenv("SKIFF_BUILD_DIR");
  return std::string(b ? b : ".") + "/tests/payloads/testapp/skiff-testapp";
}

UniqueFd Connect(int port) {
  UniqueFd s(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  timeval tv{20, 0};
  setsockopt(s.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(s.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return UniqueFd();
  return s;
}

// The app as a child process: killed (SIGKILL) and reaped by the destructor if still alive.
class TestApp {
 public:
  // pid_namespace: the app runs as PID 1 of a new PID namespace (needs root), as an
  // instance's entrypoint does.
  explicit TestApp(std::vector<std::string> env = {}, bool pid_namespace = false) {
    port_ = FreePort();
    char tmpl[] = "/tmp/skiff-testapp-test-XXXXXX";
    EXPECT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    env.push_back("PORT=" + std::to_string(port_));
    // Everything the child needs is prepared before fork: it only opens, dup2s and execs.
    std::string out = dir_ + "/stdout";
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::string bin = BinaryPath();
    char* argv[] = {bin.data(), nullptr};
    pid_ = pid_namespace ? static_cast<pid_t>(syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, nullptr,
                                                      nullptr, nullptr, nullptr))
                         : fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0) _exit(126);
      execve(bin.c_str(), argv, envp.data());
      _exit(127);
    }
  }
  ~TestApp() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    std::remove((dir_ + "/stdout").c_str());
    rmdir(dir_.c_str());
  }
  // Waits until the port accepts a connection.
  bool WaitReady(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (Connect(port_)) return true;
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {  // died (e.g. the binary is missing)
        pid_ = -1;
        ADD_FAILURE() << BinaryPath() << " exited before listening";
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return false;
  }
  // Waits for the process to exit; its wait status, or nullopt on timeout.
  std::optional<int> Wait(std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      int st;
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        return st;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return std::nullopt;
  }
  std::string Stdout() const {
    std::ifstream f(dir_ + "/stdout");
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  long StatusField(const std::string& field) const {  // from /proc/PID/status, in kB
    std::ifstream f("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(f, line)) {
      if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
    }
    return -1;
  }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }

 private:
  int port_ = -1;
  pid_t pid_ = -1;
  std::string dir_;
};

struct Response {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

// A blocking HTTP/1.1 client on one connection.
class Client {
 public:
  explicit Client(int port) : fd_(Connect(port)) {}
  bool connected() const { return fd_.valid(); }
  int fd() const { return fd_.get(); }
  bool Send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  // Reads at least one more byte into buf_; false at EOF or error.
  bool More() {
    char tmp[65536];
    ssize_t n = recv(fd_.get(), tmp, sizeof(tmp), 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }
  bool ReadExact(size_t n, std::string* out) {
    while (buf_.size() < n) {
      if (!More()) return false;
    }
    *out = buf_.substr(0, n);
    buf_.erase(0, n);
    return true;
  }
  bool Line(std::string* out) {
    size_t eol;
    while ((eol = buf_.find("\r\n")) == std::string::npos) {
      if (!More()) return false;
    }
    *out = buf_.substr(0, eol);
    buf_.erase(0, eol + 2);
    return true;
  }
  // One response; the body is read by Content-Length, chunked, or to EOF. With `skipped`, a
  // Content-Length body is counted into *skipped instead of kept.
  std::optional<Response> Read(uint64_t* skipped = nullptr) {
    Response r;
    std::string line;
    if (!Line(&line) || line.size() < 12) return std::nullopt;
    r.status = std::stoi(line.substr(9, 3));
    while (Line(&line) && !line.empty()) {
      size_t c = line.find(':');
      std::string name = line.substr(0, c);
      for (char& ch : name) ch = static_cast<char>(tolower(ch));
      size_t v = line.find_first_not_of(' ', c + 1);
      r.headers[name] = v == std::string::npos ? "" : line.substr(v);
    }
    if (r.status == 101 || r.status == 100) return r;
    if (r.headers.count("content-length")) {
      uint64_t n = std::stoull(r.headers["content-length"]);
      if (skipped) {
        *skipped = 0;
        while (*skipped < n) {
          if (buf_.empty() && !More()) return std::nullopt;
          size_t k = static_cast<size_t>(std::min<uint64_t>(buf_.size(), n - *skipped));
          *skipped += k;
          buf_.erase(0, k);
        }
      } else if (!ReadExact(static_cast<size_t>(n), &r.body)) {
        return std::nullopt;
      }
    } else if (r.headers["transfer-encoding"] == "chunked") {
      for (;;) {
        if (!Line(&line)) return std::nullopt;
        size_t n = std::stoul(line, nullptr, 16);
        std::string chunk;
        if (!ReadExact(n, &chunk)) return std::nullopt;
        r.body += chunk;
        if (!Line(&line)) return std::nullopt;
        if (n == 0) break;
      }
    } else {
      while (More()) {
      }
      r.body = buf_;
      buf_.clear();
    }
    return r;
  }
  std::optional<Response> Get(const std::string& target, const std::string& extra_headers = "") {
    if (!Send("GET " + target + " HTTP/1.1\r\nHost: t\r\n" + extra_headers + "\r\n")) {
      return std::nullopt;
    }
    return Read();
  }
  // True if the peer closed the connection (EOF) with nothing more to read.
  bool AtEof() {
    char c;
    return recv(fd_.get(), &c, 1, 0) == 0;
  }

 private:
  UniqueFd fd_;
  std::string buf_;
};

double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

double JsonNumber(const std::string& json, const std::string& key) {
  size_t k = json.find("\"" + key + "\":");
  if (k == std::string::npos) return -1;
  return std::strtod(json.c_str() + k + key.size() + 3, nullptr);
}

class TestAppTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(app_.WaitReady()) << "skiff-testapp did not listen"; }
  TestApp app_{{"BUSY_THREAD=0"}};
};

TEST_F(TestAppTest, RootKeepAliveAndStartLine) {
  Client c(app_.port());
  for (int i = 0; i < 3; ++i) {  // three requests on one connection
    auto r = c.Get("/");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "ok\n");
    EXPECT_EQ(r->headers["content-length"], "3");
    EXPECT_EQ(r->headers.count("connection"), 0u);
  }
  // Two pipelined requests in one write get two responses in order.
  ASSERT_TRUE(c.Send("GET / HTTP/1.1\r\nHost: t\r\n\r\nGET /nope HTTP/1.1\r\nHost: t\r\n\r\n"));
  EXPECT_EQ(c.Read()->status, 200);
  EXPECT_EQ(c.Read()->status, 404);
  // Connection: close is honoured.
  auto r = c.Get("/", "Connection: close\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->headers["connection"], "close");
  EXPECT_TRUE(c.AtEof());
  EXPECT_NE(
      app_.Stdout().find("skiff-testapp: listening on 0.0.0.0:" + std::to_string(app_.port())),
      std::string::npos)
      << app_.Stdout();
}

TEST_F(TestAppTest, ManyKeepAliveConnectionsAtOnce) {
  constexpr int kConns = 64, kRequests = 50;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kConns; ++t) {
    threads.emplace_back([&] {
      Client c(app_.port());
      for (int i = 0; i < kRequests; ++i) {
        auto r = c.Get("/");
        if (r && r->status == 200 && r->body == "ok\n") ok.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kConns * kRequests);
  Client c(app_.port());
  EXPECT_EQ(c.Get("/")->status, 200);
}

TEST_F(TestAppTest, BadRequestsAreRefused) {
  {
    Client c(app_.port());
    ASSERT_TRUE(c.Send("GARBAGE\r\n\r\n"));
    auto r = c.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400);
  }
  {
    Client c(app_.port());
    ASSERT_TRUE(c.Send("GET / HTTP/1.1\r\nX-Big: " + std::string(20000, 'x') + "\r\n\r\n"));
    auto r = c.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 431);
  }
  {
    Client c(app_.port());
    ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"));
    EXPECT_EQ(c.Read()->status, 400);
  }
  Client c(app_.port());
  EXPECT_EQ(c.Get("/bytes?n=1099511627777")->status, 400);  // 2^40 + 1
  EXPECT_EQ(c.Get("/sleep?ms=abc")->status, 400);
  EXPECT_EQ(c.Get("/busy")->status, 409);  // BUSY_THREAD not set
  EXPECT_EQ(c.Get("/missing")->status, 404);
  EXPECT_EQ(c.Get("/")->status, 200);  // the connection survived the 4xx answers
}

TEST_F(TestAppTest, EchoContentLengthAndChunked) {
  std::mt19937 rng(42);
  std::string body(1 << 20, '\0');
  for (char& ch : body) ch = static_cast<char>(rng());
  Client c(app_.port());
  ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n"));
  std::thread sender([&] { c.Send(body); });
  auto r = c.Read();
  sender.join();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->headers["content-length"], std::to_string(body.size()));
  EXPECT_TRUE(r->body == body);
  // Chunked in (with an extension and a trailer): chunked out, same bytes.
  ASSERT_TRUE(
      c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
             "5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n"));
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->headers["transfer-encoding"], "chunked");
  EXPECT_EQ(r->body, "hello, world");
  // Empty body; then Expect: 100-continue gets its interim response.
  ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nContent-Length: 0\r\n\r\n"));
  r = c.Read();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "");
  ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"));
  EXPECT_EQ(c.Read()->status, 100);
  ASSERT_TRUE(c.Send("hi"));
  EXPECT_EQ(c.Read()->body, "hi");
  // A body sent to an endpoint that ignores it is skipped: the next request still parses.
  ASSERT_TRUE(c.Send("GET / HTTP/1.1\r\nContent-Length: 4\r\n\r\nxxxxGET / HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(c.Read()->body, "ok\n");
  EXPECT_EQ(c.Read()->body, "ok\n");
  Client get(app_.port());
  EXPECT_EQ(get.Get("/echo")->status, 405);
}

// 1 GiB through /echo while the app's resident memory stays flat (streamed, not buffered).
TEST_F(TestAppTest, EchoOneGibWithFlatMemory) {
  constexpr uint64_t kTotal = uint64_t{1} << 30;
  Client c(app_.port());
  ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"));
  std::thread sender([&] {
    std::string chunk(1 << 20, 'z');
    std::string head = "100000\r\n";  // 1 MiB
    for (uint64_t sent = 0; sent < kTotal; sent += chunk.size()) {
      if (!c.Send(head) || !c.Send(chunk) || !c.Send("\r\n")) return;
    }
    c.Send("0\r\n\r\n");
  });
  // Read the chunked response, counting bytes and checking them, without keeping them.
  std::string line, data;
  ASSERT_TRUE(c.Line(&line));
  EXPECT_EQ(line, "HTTP/1.1 200 OK");
  while (c.Line(&line) && !line.empty()) {
  }
  uint64_t received = 0;
  bool all_z = true;
  long max_rss_kb = 0;
  for (int i = 0;; ++i) {
    ASSERT_TRUE(c.Line(&line));
    size_t n = std::stoul(line, nullptr, 16);
    ASSERT_TRUE(c.ReadExact(n, &data));
    all_z = all_z && data.find_first_not_of('z') == std::string::npos;
    received += n;
    ASSERT_TRUE(c.Line(&line));
    if (n == 0) break;
    if (i % 256 == 0) max_rss_kb = std::max(max_rss_kb, app_.StatusField("VmRSS"));
  }
  sender.join();
  EXPECT_EQ(received, kTotal);
  EXPECT_TRUE(all_z);
  long hwm = app_.StatusField("VmHWM");
  EXPECT_GT(hwm, 0);
  EXPECT_LT(hwm, 32 * 1024) << "peak RSS " << hwm << " kB for a 1 GiB echo";
  EXPECT_LT(max_rss_kb, 32 * 1024);
}

TEST_F(TestAppTest, BytesStreamsThePattern) {
  Client c(app_.port());
  auto r = c.Get("/bytes?n=100000");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->body.size(), 100000u);
  for (size_t i = 0; i < r->body.size(); ++i) {
    ASSERT_EQ(r->body[i], static_cast<char>('a' + i % 26)) << "at " << i;
  }
  EXPECT_EQ(c.Get("/bytes?n=0")->body, "");
  // 512 MiB streamed; the app's memory stays small.
  ASSERT_TRUE(c.Send("GET /bytes?n=536870912 HTTP/1.1\r\n\r\n"));
  uint64_t skipped = 0;
  r = c.Read(&skipped);
  ASSERT_TRUE(r);
  EXPECT_EQ(skipped, uint64_t{512} << 20);
  EXPECT_LT(app_.StatusField("VmHWM"), 32 * 1024);
  // The header for the largest size is right (the body is not read: close the connection).
  Client big(app_.port());
  ASSERT_TRUE(big.Send("GET /bytes?n=1099511627776 HTTP/1.1\r\n\r\n"));
  std::string line;
  ASSERT_TRUE(big.Line(&line));
  EXPECT_EQ(line, "HTTP/1.1 200 OK");
  bool found = false;
  while (big.Line(&line) && !line.empty()) found |= line == "Content-Length: 1099511627776";
  EXPECT_TRUE(found);
}

TEST_F(TestAppTest, SleepDoesNotHoldUpOtherConnections) {
  Client slow(app_.port());
  auto t0 = Clock::now();
  ASSERT_TRUE(slow.Send("GET /sleep?ms=600 HTTP/1.1\r\n\r\n"));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  Client fast(app_.port());
  auto r = fast.Get("/");
  auto fast_ms = MsSince(t0);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_LT(fast_ms, 400) << "GET / waited for the other connection's /sleep";
  r = slow.Read();
  auto slow_ms = MsSince(t0);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "slept 600 ms\n");
  EXPECT_GE(slow_ms, 600);
}

TEST_F(TestAppTest, BurnTaskAndCpu) {
  Client c(app_.port());
  double cpu0 = JsonNumber(c.Get("/cpu")->body, "cpu_ms");
  ASSERT_GE(cpu0, 0);
  auto r = c.Get("/burn?ms=150");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_GE(JsonNumber(r->body, "cpu_ms"), 150) << r->body;
  EXPECT_GE(JsonNumber(r->body, "wall_ms"), 150) << r->body;
  double cpu1 = JsonNumber(c.Get("/cpu")->body, "cpu_ms");
  EXPECT_GE(cpu1 - cpu0, 150);

  // A task returns at once and keeps working after the response.
  auto t0 = Clock::now();
  ASSERT_TRUE(c.Send("POST /task?ms=300 HTTP/1.1\r\nContent-Length: 0\r\n\r\n"));
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 202);
  EXPECT_LT(MsSince(t0), 150);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::string running = c.Get("/task")->body;
  EXPECT_NE(running.find("\"running\": true"), std::string::npos) << running;
  auto deadline = Clock::now() + std::chrono::seconds(10);
  std::string done;
  do {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    done = c.Get("/task")->body;
  } while (done.find("\"running\": false") == std::string::npos && Clock::now() < deadline);
  EXPECT_NE(done.find("\"running\": false"), std::string::npos) << done;
  EXPECT_GE(JsonNumber(done, "cpu_ms"), 300) << done;
  EXPECT_GT(JsonNumber(done, "iterations"), JsonNumber(running, "iterations")) << done;
  EXPECT_GT(JsonNumber(done, "finished_ns"), JsonNumber(done, "started_ns"));
}

TEST_F(TestAppTest, WebSocketEcho) {
  Client c(app_.port());
  ASSERT_TRUE(
      c.Send("GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             "Sec-WebSocket-Version: 13\r\n\r\n"));
  auto r = c.Read();
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 101);
  EXPECT_EQ(r->headers["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  const uint8_t mask[4] = {0x11, 0x22, 0x33, 0x44};
  auto frame = [&](uint8_t opcode, const std::string& payload) {
    std::string f;
    f += static_cast<char>(0x80 | opcode);
    if (payload.size() < 126) {
      f += static_cast<char>(0x80 | payload.size());
    } else if (payload.size() <= 0xFFFF) {
      f += static_cast<char>(0x80 | 126);
      f += static_cast<char>(payload.size() >> 8);
      f += static_cast<char>(payload.size() & 0xFF);
    } else {
      f += static_cast<char>(0x80 | 127);
      for (int i = 7; i >= 0; --i) f += static_cast<char>((uint64_t{payload.size()} >> (8 * i)));
    }
    f.append(reinterpret_cast<const char*>(mask), 4);
    for (size_t i = 0; i < payload.size(); ++i) f += static_cast<char>(payload[i] ^ mask[i % 4]);
    return f;
  };
  // Reads one unmasked server frame: {opcode, payload}.
  auto read_frame = [&]() -> std::pair<int, std::string> {
    std::string h;
    if (!c.ReadExact(2, &h)) return {-1, ""};
    EXPECT_EQ(h[1] & 0x80, 0) << "server frames are not masked";
    uint64_t len = static_cast<uint8_t>(h[1]) & 0x7F;
    std::string ext;
    if (len == 126 && c.ReadExact(2, &ext)) {
      len = uint64_t{static_cast<uint8_t>(ext[0])} << 8 | static_cast<uint8_t>(ext[1]);
    } else if (len == 127 && c.ReadExact(8, &ext)) {
      len = 0;
      for (char ch : ext) len = len << 8 | static_cast<uint8_t>(ch);
    }
    std::string payload;
    if (!c.ReadExact(static_cast<size_t>(len), &payload)) return {-1, ""};
    return {static_cast<uint8_t>(h[0]) & 0x0F, payload};
  };
  ASSERT_TRUE(c.Send(frame(0x1, "hello websocket")));
  EXPECT_EQ(read_frame(), std::make_pair(0x1, std::string("hello websocket")));
  std::string medium(300, 'm'), big(70000, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  ASSERT_TRUE(c.Send(frame(0x2, medium)));
  EXPECT_EQ(read_frame(), std::make_pair(0x2, medium));
  ASSERT_TRUE(c.Send(frame(0x2, big)));
  EXPECT_EQ(read_frame(), std::make_pair(0x2, big));
  ASSERT_TRUE(c.Send(frame(0x9, "ping!")));
  EXPECT_EQ(read_frame(), std::make_pair(0xA, std::string("ping!")));
  ASSERT_TRUE(c.Send(frame(0x8, std::string("\x03\xe8", 2))));  // close, 1000
  EXPECT_EQ(read_frame(), std::make_pair(0x8, std::string("\x03\xe8", 2)));
  EXPECT_TRUE(c.AtEof());

  Client bad(app_.port());
  EXPECT_EQ(bad.Get("/ws")->status, 400);  // no Upgrade headers
}

TEST(TestAppEnvTest, BusyThreadReportsHeartbeatsAndStalls) {
  TestApp app({"BUSY_THREAD=1"});
  ASSERT_TRUE(app.WaitReady());
  Client c(app.port());
  auto r1 = c.Get("/busy");
  ASSERT_TRUE(r1);
  ASSERT_EQ(r1->status, 200) << r1->body;
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto r2 = c.Get("/busy");
  EXPECT_GT(JsonNumber(r2->body, "count"), JsonNumber(r1->body, "count"));
  EXPECT_GT(JsonNumber(r2->body, "heartbeat_ns"), JsonNumber(r1->body, "heartbeat_ns"));
  // Stop the process for 30 ms: the busy thread sees a stall spanning the stop, and
  // /busy?after= reports its end (after SIGCONT) and its start (before the stop).
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  kill(app.pid(), SIGSTOP);
  int64_t before = int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  clock_gettime(CLOCK_MONOTONIC, &ts);
  int64_t cont = int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
  kill(app.pid(), SIGCONT);
  auto r3 = c.Get("/busy?after=" + std::to_string(cont - 1000000) + "&wait_ms=2000");
  ASSERT_TRUE(r3);
  double resumed = JsonNumber(r3->body, "resumed_ns"), stalled = JsonNumber(r3->body, "stalled_ns");
  EXPECT_GE(resumed, static_cast<double>(cont)) << r3->body;
  EXPECT_LT(resumed - cont, 1e9) << r3->body;
  EXPECT_LE(stalled, static_cast<double>(before) + 5e6) << r3->body;
}

TEST(TestAppEnvTest, StartupBurnDelaysListening) {
  auto t0 = Clock::now();
  TestApp app({"STARTUP_BURN_MS=300"});
  ASSERT_TRUE(app.WaitReady());
  EXPECT_GE(MsSince(t0), 300);
  Client c(app.port());
  auto r = c.Get("/startup");
  ASSERT_TRUE(r);
  EXPECT_GE(JsonNumber(r->body, "burn_cpu_ms"), 300) << r->body;
  EXPECT_GE(JsonNumber(r->body, "burn_wall_ms"), 300) << r->body;
}

TEST(TestAppEnvTest, BadEnvironmentFails) {
  TestApp app({"STARTUP_BURN_MS=lots"});
  auto st = app.Wait(std::chrono::seconds(10));
  ASSERT_TRUE(st);
  EXPECT_TRUE(WIFEXITED(*st));
  EXPECT_EQ(WEXITSTATUS(*st), 2);
}

TEST(TestAppSigtermTest, FinishesTheRequestInFlightThenExitsZero) {
  TestApp app;
  ASSERT_TRUE(app.WaitReady());
  Client idle(app.port());
  ASSERT_EQ(idle.Get("/")->status, 200);  // keep-alive, idle from now on
  Client slow(app.port());
  ASSERT_TRUE(slow.Send("GET /sleep?ms=700 HTTP/1.1\r\n\r\n"));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto t0 = Clock::now();
  ASSERT_EQ(kill(app.pid(), SIGTERM), 0);
  // The idle connection is closed at once; new connections are refused.
  EXPECT_TRUE(idle.AtEof());
  EXPECT_LT(MsSince(t0), 300);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(Connect(app.port()).valid()) << "still accepting after SIGTERM";
  // The request in flight completes, with Connection: close, and then the process exits 0.
  auto r = slow.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "slept 700 ms\n");
  EXPECT_EQ(r->headers["connection"], "close");
  auto st = app.Wait(std::chrono::seconds(5));
  ASSERT_TRUE(st) << "did not exit after draining";
  EXPECT_TRUE(WIFEXITED(*st));
  EXPECT_EQ(WEXITSTATUS(*st), 0);
  EXPECT_GE(MsSince(t0), 500);
  EXPECT_NE(app.Stdout().find("1 with a request in flight"), std::string::npos) << app.Stdout();
}

// As PID 1 of a PID namespace (an instance's entrypoint), a SIGTERM from the parent namespace
// still drains and exits: the kernel drops signals to an init whose disposition is SIG_DFL
// unless they are blocked — as the app's are, for its signalfd.
TEST(TestAppSigtermTest, AsPidOneOfAPidNamespace) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (CLONE_NEWPID)";
  TestApp app({}, /*pid_namespace=*/true);
  ASSERT_TRUE(app.WaitReady());
  EXPECT_NE(app.Stdout().find("pid=1 "), std::string::npos) << app.Stdout();
  Client slow(app.port());
  ASSERT_TRUE(slow.Send("GET /sleep?ms=300 HTTP/1.1\r\n\r\n"));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_EQ(kill(app.pid(), SIGTERM), 0);
  auto r = slow.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  auto st = app.Wait(std::chrono::seconds(5));
  ASSERT_TRUE(st) << "PID 1 ignored SIGTERM";
  EXPECT_TRUE(WIFEXITED(*st));
  EXPECT_EQ(WEXITSTATUS(*st), 0);
}

TEST(TestAppSigtermTest, ExitOnSigtermNowDoesNotWait) {
  TestApp app({"EXIT_ON_SIGTERM=now"});
  ASSERT_TRUE(app.WaitReady());
  Client slow(app.port());
  ASSERT_TRUE(slow.Send("GET /sleep?ms=5000 HTTP/1.1\r\n\r\n"));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto t0 = Clock::now();
  ASSERT_EQ(kill(app.pid(), SIGTERM), 0);
  auto st = app.Wait(std::chrono::seconds(2));
  ASSERT_TRUE(st);
  EXPECT_TRUE(WIFEXITED(*st));
  EXPECT_EQ(WEXITSTATUS(*st), 0);
  EXPECT_LT(MsSince(t0), 1000);
  EXPECT_FALSE(slow.Read()) << "the request in flight got an answer";
}

}  // namespace
}  // namespace skiff::testapp
