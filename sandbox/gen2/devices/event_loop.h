#pragma once

// A small epoll loop for the VMM's device thread (the shape of Firecracker's event manager):
// fds are registered with the events of interest and a callback, and identified by a token.
// One thread runs the loop (Run or RunOnce); Register, Modify, Unregister and Stop may be
// called from any thread.
//
// Level-triggered. Modify(token, 0) takes the fd out of the epoll set altogether (so not even
// EPOLLHUP/EPOLLERR wake the loop: a device that cannot consume input disarms its fd without
// a busy loop) and a later Modify with events puts it back.
//
// A callback registered on this loop runs on the loop thread, without any lock of the loop
// held; it may call Register/Modify/Unregister. Unregister called from another thread while
// the loop is dispatching that token's callback does not wait for it: the object behind a
// callback must outlive the loop's last Run/RunOnce (destroy devices after the device thread
// is joined).

#include <sys/epoll.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "sandbox/common/unique_fd.h"

namespace skiff::gen2 {

class EventLoop {
 public:
  using Token = uint64_t;
  // Receives the epoll events (EPOLLIN, EPOLLOUT, EPOLLHUP, ...) that fired.
  using Callback = std::function<void(uint32_t events)>;

  static absl::StatusOr<std::unique_ptr<EventLoop>> Create();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Watches `fd` (owned by the caller, open until Unregister) for `events` (0: registered
  // but disarmed). Tokens are never reused.
  absl::StatusOr<Token> Register(int fd, uint32_t events, Callback callback);
  absl::Status Modify(Token token, uint32_t events);
  absl::Status Unregister(Token token);

  // Waits up to `timeout_ms` (-1: forever) and runs the callbacks of the fds that are ready.
  // Returns the number of callbacks run (0 on timeout or when woken by Stop).
  absl::StatusOr<int> RunOnce(int timeout_ms);
  // Runs until Stop() (also a Stop() that came before Run).
  absl::Status Run();
  // Makes Run return soon; callable from any thread and from callbacks.
  void Stop();

 private:
  struct Entry {
    int fd;
    uint32_t events;
    std::shared_ptr<Callback> callback;
  };
  static constexpr Token kWakeToken = 0;

  EventLoop(UniqueFd epoll, UniqueFd wake) : epoll_(std::move(epoll)), wake_(std::move(wake)) {}

  const UniqueFd epoll_;
  const UniqueFd wake_;  // an eventfd: Stop() makes it readable

  absl::Mutex mu_;
  Token next_token_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<Token, Entry> entries_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace skiff::gen2
