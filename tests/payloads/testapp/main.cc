// skiff-testapp: the project's HTTP test payload (static; libc and libstdc++ only).
//
// HTTP/1.1 with keep-alive on 0.0.0.0:$PORT (default 8080):
//   GET  /                 200 "ok\n"
//   POST /echo             the request body echoed as it arrives (Content-Length in, the
//                          same length out; chunked in, chunked out); never buffered whole
//   GET  /bytes?n=N        N bytes (N <= 2^40) streamed; byte i is 'a' + i % 26
//   GET  /sleep?ms=N       200 after N ms (other connections are not held up)
//   GET  /burn?ms=N        busy-loops N ms of this thread's CPU, then {"cpu_ms", "wall_ms"}
//   GET  /ws               WebSocket (RFC 6455): echoes frames, answers ping and close
//   POST /task?ms=N        starts a fire-and-forget thread doing N ms of CPU work; 202 at once
//   GET  /task             {"iterations", "cpu_ms", "running", "started_ns", "finished_ns"}
//   GET  /cpu              the process's CPU time so far {"cpu_ms", "cpu_ns"}
//   GET  /busy[?after=NS&wait_ms=MS]  the BUSY_THREAD's count and heartbeat (CLOCK_MONOTONIC
//                          ns); with after=NS waits for the first stall that ended after NS
//                          and reports "resumed_ns" and "stalled_ns" (see workers.h)
//   GET  /startup          {"burn_cpu_ms", "burn_wall_ms"} of STARTUP_BURN_MS
//   GET  /headers          the request's headers, one "name: value" a line
// Environment: PORT; BUSY_THREAD=1 (a thread spinning forever); BUSY_STALL_US (default 100:
// a gap between heartbeats longer than this is a stall); STARTUP_BURN_MS=N (burn N ms of CPU
// before listening); EXIT_ON_SIGTERM=now (exit at once on SIGTERM instead of draining).
// SIGTERM: stop accepting, finish the requests in flight, exit 0.

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tests/payloads/testapp/handlers.h"
#include "tests/payloads/testapp/server.h"
#include "tests/payloads/testapp/workers.h"

namespace {

// A non-negative decimal environment variable, `def` if unset; false if malformed.
bool EnvUint(const char* name, unsigned long long max, unsigned long long def,
             unsigned long long* out) {
  const char* v = getenv(name);
  if (v == nullptr || *v == '\0') {
    *out = def;
    return true;
  }
  char* end = nullptr;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 10);
  if (errno != 0 || *end != '\0' || v[0] == '-' || n > max) {
    fprintf(stderr, "skiff-testapp: %s=%s: not a number in 0..%llu\n", name, v, max);
    return false;
  }
  *out = n;
  return true;
}

}  // namespace

int main() {
  using namespace skiff::testapp;
  BlockStopSignals();  // before the busy thread exists: only the main thread takes SIGTERM
  unsigned long long port, stall_us, burn_ms;
  if (!EnvUint("PORT", 65535, 8080, &port) || !EnvUint("BUSY_STALL_US", 10000000, 100, &stall_us) ||
      !EnvUint("STARTUP_BURN_MS", 600000, 0, &burn_ms)) {
    return 2;
  }
  const char* exit_now = getenv("EXIT_ON_SIGTERM");
  const char* busy = getenv("BUSY_THREAD");

  static AppState app(static_cast<int64_t>(stall_us) * 1000);
  if (burn_ms > 0) {
    int64_t wall0 = MonotonicNs(), cpu0 = ThreadCpuNs();
    BurnCpu(burn_ms);
    app.startup_burn_cpu_ns = ThreadCpuNs() - cpu0;
    app.startup_burn_wall_ns = MonotonicNs() - wall0;
  }
  if (busy != nullptr && strcmp(busy, "1") == 0) app.busy.Start();
  ServerOptions options;
  options.port = static_cast<uint16_t>(port);
  options.exit_on_sigterm_now = exit_now != nullptr && strcmp(exit_now, "now") == 0;
  return RunServer(options, app);
}
