#include "tests/payloads/testapp/handlers.h"

#include <time.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>

#include "tests/payloads/testapp/websocket.h"

namespace skiff::testapp {
namespace {

constexpr uint64_t kMaxSleepMs = 3600 * 1000;
constexpr uint64_t kMaxBurnMs = 600 * 1000;
constexpr uint64_t kMaxBytes = uint64_t{1} << 40;

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 202:
      return "Accepted";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 409:
      return "Conflict";
    case 431:
      return "Request Header Fields Too Large";
    default:
      return "Unknown";
  }
}

std::string Head(int status, bool keep_alive, std::string_view content_type,
                 std::string_view framing) {
  std::string h = "HTTP/1.1 ";
  h += std::to_string(status);
  h += ' ';
  h += Reason(status);
  h += "\r\nContent-Type: ";
  h += content_type;
  h += "\r\n";
  h += framing;
  h += "\r\n";
  if (!keep_alive) h += "Connection: close\r\n";
  h += "\r\n";
  return h;
}

void SleepMs(uint64_t ms) {
  timespec ts{static_cast<time_t>(ms / 1000), static_cast<long>(ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

// Sends "100 Continue" if the client waits for it before sending the body.
bool MaybeContinue(Conn& conn, const Request& req) {
  const std::string* expect = req.Header("expect");
  if (expect == nullptr || req.minor_version == 0) return true;
  if (!req.chunked && req.content_length == 0) return true;
  return conn.WriteAll("HTTP/1.1 100 Continue\r\n\r\n");
}

bool Echo(Conn& conn, const Request& req, bool keep_alive) {
  if (!MaybeContinue(conn, req)) return false;
  BodyReader body(conn, req);
  std::string_view piece;
  if (!req.chunked) {
    // Same length out as in, streamed as it arrives.
    if (!conn.WriteAll(Head(200, keep_alive, "application/octet-stream",
                            "Content-Length: " + std::to_string(req.content_length)),
                       req.content_length > 0)) {
      return false;
    }
    while (!body.done()) {
      if (!body.Next(&piece) || !conn.WriteAll(piece)) return false;
    }
    return keep_alive;
  }
  if (!conn.WriteAll(
          Head(200, keep_alive, "application/octet-stream", "Transfer-Encoding: chunked"))) {
    return false;
  }
  char size_line[32];
  while (!body.done()) {
    if (!body.Next(&piece)) return false;
    if (piece.empty()) break;
    int n = snprintf(size_line, sizeof(size_line), "%zx\r\n", piece.size());
    if (!conn.WriteAll({size_line, static_cast<size_t>(n)}, true) || !conn.WriteAll(piece, true) ||
        !conn.WriteAll("\r\n")) {
      return false;
    }
  }
  return conn.WriteAll("0\r\n\r\n") && keep_alive;
}

bool Bytes(Conn& conn, uint64_t n, bool keep_alive) {
  // Byte i of the body is 'a' + i % 26 (the buffer's size is a multiple of 26).
  static const std::string kPattern = [] {
    std::string s(26 * 2520, '\0');
    for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>('a' + i % 26);
    return s;
  }();
  if (!conn.WriteAll(
          Head(200, keep_alive, "application/octet-stream", "Content-Length: " + std::to_string(n)),
          n > 0)) {
    return false;
  }
  while (n > 0) {
    size_t k = static_cast<size_t>(std::min<uint64_t>(n, kPattern.size()));
    if (!conn.WriteAll(std::string_view(kPattern).substr(0, k))) return false;
    n -= k;
  }
  return keep_alive;
}

std::string Json2(const char* k1, double v1, const char* k2, double v2) {
  char buf[160];
  snprintf(buf, sizeof(buf), "{\"%s\": %.3f, \"%s\": %.3f}\n", k1, v1, k2, v2);
  return buf;
}

}  // namespace

bool Respond(Conn& conn, int status, std::string_view body, bool keep_alive,
             std::string_view content_type) {
  std::string out =
      Head(status, keep_alive, content_type, "Content-Length: " + std::to_string(body.size()));
  out += body;
  return conn.WriteAll(out) && keep_alive;
}

bool HandleRequest(Conn& conn, const Request& req, AppState& app) {
  bool keep_alive = req.keep_alive && !app.draining.load();
  const std::string& m = req.method;
  const std::string& p = req.path;

  if (p == "/ws") {
    ServeWebSocket(conn, req);
    return false;
  }
  if (p == "/echo") {
    if (m != "POST" && m != "PUT") return Respond(conn, 405, "POST /echo\n", false);
    return Echo(conn, req, keep_alive);
  }
  // Every other endpoint ignores the request body: read past it to keep the framing.
  if (req.chunked || req.content_length > 0) {
    if (!MaybeContinue(conn, req)) return false;
    if (!BodyReader(conn, req).Discard()) return false;
  }
  auto param = [&](const char* key, uint64_t max, uint64_t* out) {
    auto v = QueryUint(req.query, key);
    if (!v || *v > max) return false;
    *out = *v;
    return true;
  };
  uint64_t n = 0;
  if (p == "/" && m == "GET") return Respond(conn, 200, "ok\n", keep_alive);
  if (p == "/bytes" && m == "GET") {
    if (!param("n", kMaxBytes, &n)) {
      return Respond(conn, 400, "GET /bytes?n=N with N <= 2^40\n", keep_alive);
    }
    return Bytes(conn, n, keep_alive);
  }
  if (p == "/sleep" && m == "GET") {
    if (!param("ms", kMaxSleepMs, &n)) {
      return Respond(conn, 400, "GET /sleep?ms=N with N <= 3600000\n", keep_alive);
    }
    SleepMs(n);
    return Respond(conn, 200, "slept " + std::to_string(n) + " ms\n",
                   keep_alive && !app.draining.load());
  }
  if (p == "/burn" && m == "GET") {
    if (!param("ms", kMaxBurnMs, &n)) {
      return Respond(conn, 400, "GET /burn?ms=N with N <= 600000\n", keep_alive);
    }
    int64_t wall0 = MonotonicNs(), cpu0 = ThreadCpuNs();
    BurnCpu(n);
    return Respond(conn, 200,
                   Json2("cpu_ms", static_cast<double>(ThreadCpuNs() - cpu0) / 1e6, "wall_ms",
                         static_cast<double>(MonotonicNs() - wall0) / 1e6),
                   keep_alive && !app.draining.load(), "application/json");
  }
  if (p == "/task") {
    if (m == "POST") {
      if (!param("ms", kMaxBurnMs, &n)) {
        return Respond(conn, 400, "POST /task?ms=N with N <= 600000\n", keep_alive);
      }
      app.task.Start(n);
      return Respond(conn, 202, "{\"started\": true}\n", keep_alive, "application/json");
    }
    if (m == "GET") return Respond(conn, 200, app.task.Json(), keep_alive, "application/json");
    return Respond(conn, 405, "GET or POST /task\n", keep_alive);
  }
  if (p == "/cpu" && m == "GET") {
    int64_t cpu = ProcessCpuNs();
    return Respond(conn, 200, Json2("cpu_ms", static_cast<double>(cpu) / 1e6, "cpu_ns", cpu),
                   keep_alive, "application/json");
  }
  if (p == "/busy" && m == "GET") {
    if (!app.busy.started()) return Respond(conn, 409, "BUSY_THREAD=1 is not set\n", keep_alive);
    uint64_t after = QueryUint(req.query, "after").value_or(0);
    uint64_t wait_ms = std::min<uint64_t>(QueryUint(req.query, "wait_ms").value_or(1000), 60000);
    if (after > static_cast<uint64_t>(INT64_MAX)) {
      return Respond(conn, 400, "GET /busy[?after=NS[&wait_ms=MS]]\n", keep_alive);
    }
    return Respond(conn, 200,
                   app.busy.Json(static_cast<int64_t>(after), static_cast<int64_t>(wait_ms)),
                   keep_alive && !app.draining.load(), "application/json");
  }
  if (p == "/startup" && m == "GET") {
    return Respond(conn, 200,
                   Json2("burn_cpu_ms", static_cast<double>(app.startup_burn_cpu_ns) / 1e6,
                         "burn_wall_ms", static_cast<double>(app.startup_burn_wall_ns) / 1e6),
                   keep_alive, "application/json");
  }
  if (p == "/headers" && m == "GET") {
    std::string body;
    for (const auto& [name, value] : req.headers) body += name + ": " + value + "\n";
    return Respond(conn, 200, body, keep_alive);
  }
  return Respond(conn, 404, "no such endpoint: " + m + " " + p + "\n", keep_alive);
}

}  // namespace skiff::testapp
