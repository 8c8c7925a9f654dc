#include "sandbox/gen2/devices/event_loop.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "sandbox/common/status.h"

namespace skiff::gen2 {

absl::StatusOr<std::unique_ptr<EventLoop>> EventLoop::Create() {
  UniqueFd epoll(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll) return ErrnoStatus(errno, "epoll_create1");
  UniqueFd wake(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake) return ErrnoStatus(errno, "eventfd(event loop wake-up)");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeToken;
  if (epoll_ctl(epoll.get(), EPOLL_CTL_ADD, wake.get(), &ev) != 0) {
    return ErrnoStatus(errno, "epoll_ctl(ADD, eventfd ", wake.get(), ")");
  }
  return std::unique_ptr<EventLoop>(new EventLoop(std::move(epoll), std::move(wake)));
}

absl::StatusOr<EventLoop::Token> EventLoop::Register(int fd, uint32_t events, Callback callback) {
  absl::MutexLock lock(&mu_);
  const Token token = next_token_++;
  if (events != 0) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = token;
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
      return ErrnoStatus(errno, "epoll_ctl(ADD, fd ", fd, ")");
    }
  }
  entries_.emplace(token, Entry{fd, events, std::make_shared<Callback>(std::move(callback))});
  return token;
}

absl::Status EventLoop::Modify(Token token, uint32_t events) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(token);
  if (it == entries_.end()) return absl::NotFoundError(absl::StrCat("event loop token ", token));
  Entry& e = it->second;
  if (e.events == events) return absl::OkStatus();
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = token;
  int op = EPOLL_CTL_MOD;
  if (events == 0) op = EPOLL_CTL_DEL;
  if (e.events == 0) op = EPOLL_CTL_ADD;
  if (epoll_ctl(epoll_.get(), op, e.fd, &ev) != 0) {
    return ErrnoStatus(errno, "epoll_ctl(", op, ", fd ", e.fd, ", events ", events, ")");
  }
  e.events = events;
  return absl::OkStatus();
}

absl::Status EventLoop::Unregister(Token token) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(token);
  if (it == entries_.end()) return absl::NotFoundError(absl::StrCat("event loop token ", token));
  const int fd = it->second.fd;
  if (it->second.events != 0 && epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr) != 0) {
    const int err = errno;
    entries_.erase(it);
    return ErrnoStatus(err, "epoll_ctl(DEL, fd ", fd, ")");
  }
  entries_.erase(it);
  return absl::OkStatus();
}

absl::StatusOr<int> EventLoop::RunOnce(int timeout_ms) {
  epoll_event events[32];
  const int n = epoll_wait(epoll_.get(), events, 32, timeout_ms);
  if (n < 0) {
    if (errno == EINTR) return 0;
    return ErrnoStatus(errno, "epoll_wait");
  }
  int ran = 0;
  for (int i = 0; i < n; ++i) {
    const Token token = events[i].data.u64;
    if (token == kWakeToken) {
      uint64_t count;
      (void)!read(wake_.get(), &count, sizeof(count));
      continue;
    }
    std::shared_ptr<Callback> callback;
    {
      absl::MutexLock lock(&mu_);
      auto it = entries_.find(token);
      // Unregistered or disarmed by an earlier callback of this round: skip.
      if (it == entries_.end() || it->second.events == 0) continue;
      callback = it->second.callback;
    }
    (*callback)(events[i].events);
    ++ran;
  }
  return ran;
}

absl::Status EventLoop::Run() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (stop_) {
        stop_ = false;
        return absl::OkStatus();
      }
    }
    SKIFF_RETURN_IF_ERROR(RunOnce(-1).status());
  }
}

void EventLoop::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  const uint64_t one = 1;
  (void)!write(wake_.get(), &one, sizeof(one));
}

}  // namespace skiff::gen2
