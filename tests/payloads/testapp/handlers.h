#pragma once

// The test app's endpoints (see main.cc for the list) and the state they share.

#include <atomic>
#include <cstdint>

#include "tests/payloads/testapp/http_request.h"
#include "tests/payloads/testapp/socket_io.h"
#include "tests/payloads/testapp/workers.h"

namespace skiff::testapp {

struct AppState {
  explicit AppState(int64_t busy_stall_ns) : busy(busy_stall_ns) {}

  BackgroundTask task;
  BusyThread busy;
  // Set on SIGTERM: responses carry "Connection: close" and connections end after them.
  std::atomic<bool> draining{false};
  int64_t startup_burn_cpu_ns = 0;
  int64_t startup_burn_wall_ns = 0;
};

// Serves one request whose head has been read from `conn` (including reading or discarding
// its body). Returns true if the connection may carry another request.
bool HandleRequest(Conn& conn, const Request& req, AppState& app);

// Writes a complete response with a text body; returns `keep_alive` unless the write failed.
bool Respond(Conn& conn, int status, std::string_view body, bool keep_alive,
             std::string_view content_type = "text/plain");

}  // namespace skiff::testapp
