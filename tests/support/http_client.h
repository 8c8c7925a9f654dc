#pragma once

// A minimal blocking HTTP/1.1 client over one TCP connection, for tests that need what
// libcurl hides: several requests on one keep-alive connection, a Host header that names a
// service, bodies streamed from a generator, raw bytes after an Upgrade.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "sandbox/common/unique_fd.h"

namespace skiff::testing {

struct ClientResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-cased names
  std::string body;                            // unless a sink consumed it
  uint64_t body_bytes = 0;
};

class HttpConnection {
 public:
  // Connects to ip:port (timeout bounds connect and every later read/write).
  static absl::StatusOr<HttpConnection> Connect(const std::string& ip, uint16_t port,
                                                absl::Duration timeout = absl::Seconds(30));

  // Sends `method path` with Host and extra "Name: value" headers and `body`
  // (Content-Length), reads the whole response. Body bytes go to `sink` when given
  // (then ClientResponse::body stays empty).
  absl::StatusOr<ClientResponse> Request(
      const std::string& method, const std::string& path, const std::string& host,
      const std::vector<std::string>& headers = {}, const std::string& body = "",
      const std::function<void(const char*, size_t)>& sink = nullptr);

  // Raw access (Upgrade tests, streaming uploads).
  absl::Status WriteAll(const void* data, size_t len);
  absl::Status WriteAll(const std::string& s) { return WriteAll(s.data(), s.size()); }
  // Reads the status line and headers; the body is left to the caller.
  absl::StatusOr<ClientResponse> ReadHead();
  // Reads the body of `head` (Content-Length, chunked, or to EOF).
  absl::Status ReadBody(ClientResponse& head,
                        const std::function<void(const char*, size_t)>& sink = nullptr);
  // Exactly n bytes (after any buffered ones).
  absl::StatusOr<std::string> ReadExactly(size_t n);
  int fd() const { return fd_.get(); }

 private:
  explicit HttpConnection(UniqueFd fd) : fd_(std::move(fd)) {}
  absl::StatusOr<std::string> ReadLine();
  absl::Status Fill();  // reads more into buf_

  UniqueFd fd_;
  std::string buf_;
  size_t pos_ = 0;
};

// One request on a fresh connection.
absl::StatusOr<ClientResponse> HttpRequest(uint16_t port, const std::string& method,
                                           const std::string& path, const std::string& host,
                                           const std::vector<std::string>& headers = {},
                                           const std::string& body = "");

}  // namespace skiff::testing
