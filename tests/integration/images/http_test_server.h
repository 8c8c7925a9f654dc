#pragma once

// A tiny HTTP/1.1 server on 127.0.0.1:<free port> for registry-protocol tests (auth
// challenges, token endpoints, retries). One thread, one request per connection.

#include <atomic>
#include <functional>
#include <map>
#include <string>
#include <thread>

#include "sandbox/common/unique_fd.h"

namespace skiff::images::testing {

struct HttpRequest {
  std::string method;
  std::string target;                          // path and query
  std::map<std::string, std::string> headers;  // lower-case names
};

struct HttpResponse {
  int status = 200;
  std::map<std::string, std::string> headers;
  std::string body;
};

class HttpTestServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;
  explicit HttpTestServer(Handler handler);
  ~HttpTestServer();  // stops and joins the thread

  int port() const { return port_; }
  std::string host_port() const { return "127.0.0.1:" + std::to_string(port_); }
  int requests() const { return requests_; }

 private:
  void Serve();

  Handler handler_;
  UniqueFd listen_;
  UniqueFd stop_read_, stop_write_;
  int port_ = 0;
  std::atomic<int> requests_ = 0;
  std::thread thread_;
};

}  // namespace skiff::images::testing
