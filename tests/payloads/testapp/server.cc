#include "tests/payloads/testapp/server.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <list>
#include <mutex>

#include "sandbox/common/unique_fd.h"

namespace skiff::testapp {
namespace {

constexpr size_t kThreadStack = 256 * 1024;

// The connections alive. Owned by the main thread's RunServer; each connection thread
// registers itself and unregisters before its fd is closed, so the main thread may shutdown()
// a registered fd under `mu`.
struct Registry {
  struct Slot {
    int fd;
    std::atomic<bool> idle{true};  // between requests (waiting for the next head)
  };
  std::mutex mu;
  std::condition_variable cv;
  std::list<Slot> slots;  // guarded by mu; stable addresses
};

struct ConnArgs {
  UniqueFd fd;
  AppState* app;
  Registry* registry;
  Registry::Slot* slot;
};

void ServeConnection(Conn& conn, AppState& app, Registry::Slot& slot) {
  for (;;) {
    // Dekker-style with the SIGTERM path: it sets draining then looks at idle; we set idle
    // then look at draining. One of us sees the other.
    slot.idle.store(conn.buffered().empty());
    if (app.draining.load() && conn.buffered().empty()) return;
    Request req;
    HeadResult r = ReadRequestHead(conn, &req);
    slot.idle.store(false);
    switch (r) {
      case HeadResult::kClosed:
        return;
      case HeadResult::kBadRequest:
        Respond(conn, 400, "malformed HTTP/1.1 request\n", false);
        return;
      case HeadResult::kTooLarge:
        Respond(conn, 431, "request head larger than 16 KiB\n", false);
        return;
      case HeadResult::kOk:
        break;
    }
    if (!HandleRequest(conn, req, app)) return;
  }
}

void* ConnectionThread(void* arg) {
  std::unique_ptr<ConnArgs> args(static_cast<ConnArgs*>(arg));
  Conn conn(std::move(args->fd));
  ServeConnection(conn, *args->app, *args->slot);
  {
    std::lock_guard<std::mutex> lock(args->registry->mu);
    for (auto it = args->registry->slots.begin(); it != args->registry->slots.end(); ++it) {
      if (&*it == args->slot) {
        args->registry->slots.erase(it);
        break;
      }
    }
    args->registry->cv.notify_all();
  }
  return nullptr;  // conn (and its fd) is closed here, after unregistering
}

bool StartConnection(UniqueFd fd, AppState& app, Registry& registry) {
  int one = 1;
  setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  Registry::Slot* slot;
  {
    std::lock_guard<std::mutex> lock(registry.mu);
    slot = &registry.slots.emplace_back();
    slot->fd = fd.get();
  }
  auto* args = new ConnArgs{std::move(fd), &app, &registry, slot};
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, kThreadStack);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t thread;
  int err = pthread_create(&thread, &attr, ConnectionThread, args);
  pthread_attr_destroy(&attr);
  if (err != 0) {
    fprintf(stderr, "skiff-testapp: pthread_create: %s\n", strerror(err));
    std::lock_guard<std::mutex> lock(registry.mu);
    registry.slots.remove_if([slot](const Registry::Slot& s) { return &s == slot; });
    delete args;  // closes the connection
    return false;
  }
  return true;
}

sigset_t StopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

}  // namespace

void BlockStopSignals() {
  sigset_t set = StopSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

int RunServer(const ServerOptions& options, AppState& app) {
  BlockStopSignals();  // no-op if main() did it already, as it must when it starts threads
  sigset_t set = StopSignals();
  UniqueFd sigfd(signalfd(-1, &set, SFD_CLOEXEC));
  if (!sigfd) {
    fprintf(stderr, "skiff-testapp: signalfd: %s\n", strerror(errno));
    return 1;
  }
  UniqueFd listener(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!listener) {
    fprintf(stderr, "skiff-testapp: socket: %s\n", strerror(errno));
    return 1;
  }
  int one = 1;
  setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(options.port);
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    fprintf(stderr, "skiff-testapp: bind(0.0.0.0:%u): %s\n", options.port, strerror(errno));
    return 1;
  }
  if (listen(listener.get(), 4096) != 0) {
    fprintf(stderr, "skiff-testapp: listen(0.0.0.0:%u): %s\n", options.port, strerror(errno));
    return 1;
  }
  printf("skiff-testapp: listening on 0.0.0.0:%u pid=%d busy_thread=%d startup_burn_ms=%.0f\n",
         options.port, getpid(), app.busy.started() ? 1 : 0,
         static_cast<double>(app.startup_burn_cpu_ns) / 1e6);
  fflush(stdout);

  Registry registry;
  for (;;) {
    pollfd fds[2] = {{listener.get(), POLLIN, 0}, {sigfd.get(), POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      fprintf(stderr, "skiff-testapp: poll: %s\n", strerror(errno));
      return 1;
    }
    if (fds[1].revents & POLLIN) break;
    for (;;) {
      UniqueFd fd(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!fd) break;  // EAGAIN (or a connection that died in the backlog)
      StartConnection(std::move(fd), app, registry);
    }
  }
  if (options.exit_on_sigterm_now) _exit(0);
  listener.Reset();  // stop accepting: new connections are refused
  app.draining.store(true);
  std::unique_lock<std::mutex> lock(registry.mu);
  size_t in_flight = 0;
  for (auto& slot : registry.slots) {
    if (slot.idle.load()) {
      shutdown(slot.fd, SHUT_RD);  // its blocked read returns EOF: the thread closes it
    } else {
      ++in_flight;
    }
  }
  printf("skiff-testapp: SIGTERM: draining %zu connection(s), %zu with a request in flight\n",
         registry.slots.size(), in_flight);
  fflush(stdout);
  registry.cv.wait(lock, [&] { return registry.slots.empty(); });
  printf("skiff-testapp: drained, exiting\n");
  fflush(stdout);
  return 0;
}

}  // namespace skiff::testapp
