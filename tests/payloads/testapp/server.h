#pragma once

// The test app's server: a listening socket on 0.0.0.0:PORT, one thread per connection
// (blocking reads and writes: streaming, /sleep and /burn never hold up other connections),
// and the main thread waiting for new connections and for SIGTERM.
//
// SIGTERM: stop accepting (the listener is closed), wake the connections idle between
// requests so they close, let the ones with a request in flight finish it (the response says
// "Connection: close"), and return 0 once none is left. With `exit_on_sigterm_now`, _exit(0)
// at once instead.

#include <cstdint>

#include "tests/payloads/testapp/handlers.h"

namespace skiff::testapp {

struct ServerOptions {
  uint16_t port = 8080;
  bool exit_on_sigterm_now = false;
};

// Blocks SIGTERM and SIGINT in the calling thread, and so in every thread it starts later:
// call it first thing in main(), before any thread exists, so that only RunServer's signalfd
// takes them.
void BlockStopSignals();

// Binds, prints the start line to stdout, serves until SIGTERM/SIGINT. Returns the process
// exit code (non-zero if the socket could not be set up; the error goes to stderr).
int RunServer(const ServerOptions& options, AppState& app);

}  // namespace skiff::testapp
