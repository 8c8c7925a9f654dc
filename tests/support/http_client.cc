#include "tests/support/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "sandbox/common/status.h"

namespace skiff::testing {

absl::StatusOr<HttpConnection> HttpConnection::Connect(const std::string& ip, uint16_t port,
                                                       absl::Duration timeout) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoStatus(errno, "socket");
  timeval tv = absl::ToTimeval(timeout);
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  int one = 1;
  setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (inet_pton(AF_INET, ip.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("bad IPv4 address: ", ip));
  }
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return ErrnoStatus(errno, "connect(", ip, ":", port, ")");
  }
  return HttpConnection(std::move(fd));
}

absl::Status HttpConnection::WriteAll(const void* data, size_t len) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t n = send(fd_.get(), p, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "send");
    }
    p += n;
    len -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status HttpConnection::Fill() {
  if (pos_ > 0 && pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  }
  char tmp[65536];
  for (;;) {
    ssize_t n = recv(fd_.get(), tmp, sizeof(tmp), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "recv");
    if (n == 0) return absl::UnavailableError("connection closed by peer");
    buf_.append(tmp, static_cast<size_t>(n));
    return absl::OkStatus();
  }
}

absl::StatusOr<std::string> HttpConnection::ReadLine() {
  for (;;) {
    size_t nl = buf_.find("\r\n", pos_);
    if (nl != std::string::npos) {
      std::string line = buf_.substr(pos_, nl - pos_);
      pos_ = nl + 2;
      return line;
    }
    if (buf_.size() - pos_ > (1 << 20)) return absl::DataLossError("header line over 1 MiB");
    SKIFF_RETURN_IF_ERROR(Fill());
  }
}

absl::StatusOr<std::string> HttpConnection::ReadExactly(size_t n) {
  while (buf_.size() - pos_ < n) SKIFF_RETURN_IF_ERROR(Fill());
  std::string out = buf_.substr(pos_, n);
  pos_ += n;
  return out;
}

absl::StatusOr<ClientResponse> HttpConnection::ReadHead() {
  ClientResponse r;
  SKIFF_ASSIGN_OR_RETURN(std::string status_line, ReadLine());
  // HTTP/1.1 200 OK
  if (status_line.size() < 12 || status_line.compare(0, 5, "HTTP/") != 0 ||
      !absl::SimpleAtoi(status_line.substr(9, 3), &r.status)) {
    return absl::DataLossError(absl::StrCat("bad status line: ", status_line));
  }
  for (;;) {
    SKIFF_ASSIGN_OR_RETURN(std::string line, ReadLine());
    if (line.empty()) break;
    size_t colon = line.find(':');
    if (colon == std::string::npos) return absl::DataLossError("bad header: " + line);
    std::string name = absl::AsciiStrToLower(line.substr(0, colon));
    std::string value(absl::StripAsciiWhitespace(line.substr(colon + 1)));
    auto [it, inserted] = r.headers.emplace(name, value);
    if (!inserted) it->second += ", " + value;
  }
  return r;
}

absl::Status HttpConnection::ReadBody(ClientResponse& r,
                                      const std::function<void(const char*, size_t)>& sink) {
  auto take = [&](size_t n) {
    const char* p = buf_.data() + pos_;
    if (sink) {
      sink(p, n);
    } else {
      r.body.append(p, n);
    }
    r.body_bytes += n;
    pos_ += n;
  };
  auto consume = [&](uint64_t len) -> absl::Status {
    while (len > 0) {
      if (pos_ == buf_.size()) SKIFF_RETURN_IF_ERROR(Fill());
      size_t n = static_cast<size_t>(std::min<uint64_t>(len, buf_.size() - pos_));
      take(n);
      len -= n;
    }
    return absl::OkStatus();
  };
  const bool no_body = r.status == 204 || r.status == 304 || (r.status >= 100 && r.status < 200);
  if (no_body) return absl::OkStatus();
  auto te = r.headers.find("transfer-encoding");
  if (te != r.headers.end() &&
      absl::AsciiStrToLower(te->second).find("chunked") != std::string::npos) {
    for (;;) {
      SKIFF_ASSIGN_OR_RETURN(std::string size_line, ReadLine());
      uint64_t size = 0;
      std::string hex = size_line.substr(0, size_line.find(';'));
      if (!absl::SimpleHexAtoi(absl::StripAsciiWhitespace(hex), &size)) {
        return absl::DataLossError("bad chunk size: " + size_line);
      }
      if (size == 0) {
        for (;;) {  // trailers
          SKIFF_ASSIGN_OR_RETURN(std::string t, ReadLine());
          if (t.empty()) return absl::OkStatus();
        }
      }
      SKIFF_RETURN_IF_ERROR(consume(size));
      SKIFF_ASSIGN_OR_RETURN(std::string crlf, ReadLine());
      if (!crlf.empty()) return absl::DataLossError("chunk not followed by CRLF");
    }
  }
  auto cl = r.headers.find("content-length");
  if (cl != r.headers.end()) {
    uint64_t len = 0;
    if (!absl::SimpleAtoi(cl->second, &len)) return absl::DataLossError("bad Content-Length");
    return consume(len);
  }
  // Until EOF.
  for (;;) {
    if (pos_ < buf_.size()) take(buf_.size() - pos_);
    absl::Status st = Fill();
    if (absl::IsUnavailable(st)) return absl::OkStatus();
    SKIFF_RETURN_IF_ERROR(st);
  }
}

absl::StatusOr<ClientResponse> HttpConnection::Request(
    const std::string& method, const std::string& path, const std::string& host,
    const std::vector<std::string>& headers, const std::string& body,
    const std::function<void(const char*, size_t)>& sink) {
  std::string req = absl::StrCat(method, " ", path, " HTTP/1.1\r\nHost: ", host, "\r\n");
  for (const auto& h : headers) absl::StrAppend(&req, h, "\r\n");
  if (!body.empty() || method == "POST" || method == "PUT") {
    absl::StrAppend(&req, "Content-Length: ", body.size(), "\r\n");
  }
  absl::StrAppend(&req, "\r\n");
  SKIFF_RETURN_IF_ERROR(WriteAll(req));
  if (!body.empty()) SKIFF_RETURN_IF_ERROR(WriteAll(body));
  SKIFF_ASSIGN_OR_RETURN(ClientResponse r, ReadHead());
  if (method == "HEAD") return r;
  SKIFF_RETURN_IF_ERROR(ReadBody(r, sink));
  return r;
}

absl::StatusOr<ClientResponse> HttpRequest(uint16_t port, const std::string& method,
                                           const std::string& path, const std::string& host,
                                           const std::vector<std::string>& headers,
                                           const std::string& body) {
  SKIFF_ASSIGN_OR_RETURN(HttpConnection conn, HttpConnection::Connect("127.0.0.1", port));
  std::vector<std::string> h = headers;
  h.push_back("Connection: close");
  return conn.Request(method, path, host, h, body);
}

}  // namespace skiff::testing
