#include "tests/integration/images/http_test_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <sstream>

namespace skiff::images::testing {
namespace {

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 429:
      return "Too Many Requests";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

}  // namespace

HttpTestServer::HttpTestServer(Handler handler) : handler_(std::move(handler)) {
  listen_.Reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listen_) abort();
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(listen_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listen_.get(), 64) != 0 ||
      getsockname(listen_.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    abort();
  }
  port_ = ntohs(addr.sin_port);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) abort();
  stop_read_.Reset(fds[0]);
  stop_write_.Reset(fds[1]);
  thread_ = std::thread([this] { Serve(); });
}

HttpTestServer::~HttpTestServer() {
  char c = 'x';
  (void)!write(stop_write_.get(), &c, 1);
  thread_.join();
}

void HttpTestServer::Serve() {
  for (;;) {
    pollfd p[2] = {{listen_.get(), POLLIN, 0}, {stop_read_.get(), POLLIN, 0}};
    if (poll(p, 2, -1) < 0) continue;
    if (p[1].revents) return;
    UniqueFd conn(accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn) continue;
    std::string in;
    char buf[4096];
    size_t end;
    while ((end = in.find("\r\n\r\n")) == std::string::npos && in.size() < (1 << 20)) {
      ssize_t n = read(conn.get(), buf, sizeof(buf));
      if (n <= 0) break;
      in.append(buf, static_cast<size_t>(n));
    }
    if (end == std::string::npos) continue;
    HttpRequest req;
    std::istringstream head(in.substr(0, end));
    std::string line;
    std::getline(head, line);
    std::istringstream rl(line);
    rl >> req.method >> req.target;
    while (std::getline(head, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon);
      for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      size_t v = line.find_first_not_of(' ', colon + 1);
      req.headers[name] = v == std::string::npos ? "" : line.substr(v);
    }
    ++requests_;
    HttpResponse resp = handler_(req);
    std::string out = "HTTP/1.1 " + std::to_string(resp.status) + " " + Reason(resp.status) +
                      "\r\nContent-Length: " + std::to_string(resp.body.size()) +
                      "\r\nConnection: close\r\n";
    for (const auto& [k, v] : resp.headers) out += k + ": " + v + "\r\n";
    out += "\r\n";
    if (req.method != "HEAD") out += resp.body;
    size_t off = 0;
    while (off < out.size()) {
      ssize_t n = write(conn.get(), out.data() + off, out.size() - off);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    shutdown(conn.get(), SHUT_WR);
    while (read(conn.get(), buf, sizeof(buf)) > 0) {
    }
  }
}

}  // namespace skiff::images::testing
