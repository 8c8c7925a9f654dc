#pragma once

// Runs a function in a forked child and returns its wait status; the child is always
// reaped (and SIGKILLed after a timeout) so a failing test leaves no process behind.

#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <thread>

namespace skiff::testing {

// Exit code of `fn` (0..255) or the signal it died of, as a wait status.
template <typename Fn>
int RunInChild(Fn fn, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) _exit(fn() & 0xff);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int st = 0;
  for (;;) {
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) return st;
    if (r < 0) return -1;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      return -2;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

inline int ExitCode(int st) { return WIFEXITED(st) ? WEXITSTATUS(st) : -1; }
inline int DeathSignal(int st) { return st >= 0 && WIFSIGNALED(st) ? WTERMSIG(st) : 0; }

}  // namespace skiff::testing
