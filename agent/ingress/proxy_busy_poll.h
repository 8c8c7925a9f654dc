#pragma once

// When a proxy thread with busy polling keeps polling and when it blocks (see RunWorker in
// http_proxy.cc). After handling events the thread polls (epoll_wait with no timeout, then
// sched_yield so anything else runnable on its CPU goes first) for up to `window`, so that an
// answer or a next request arriving within it is picked up without a sleep and a wake-up.
//
// Polling only pays while the CPU would otherwise idle. A sched_yield that comes back late
// (kYieldedAway or more) means other threads wanted this CPU — instances, clients, the rest
// of the node — so polling stops for kBackoff, and the thread sleeps between events, leaving
// that CPU to them.
//
// Times are passed in, so that tests can drive it. Threads: one proxy thread's.

#include <chrono>

namespace skiff::ingress::proxy {

class BusyPollGovernor {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr Clock::duration kYieldedAway = std::chrono::microseconds(50);
  static constexpr Clock::duration kBackoff = std::chrono::milliseconds(20);

  BusyPollGovernor(Clock::duration window, Clock::time_point now)
      : window_(window), last_event_(now) {}

  // Events were handled at `now`.
  void Handled(Clock::time_point now) { last_event_ = now; }
  // Whether, with nothing to handle at `now`, the thread should yield and poll again rather
  // than block until the next event.
  bool ShouldPoll(Clock::time_point now) const {
    return now - last_event_ < window_ && now >= no_poll_until_;
  }
  // A sched_yield called at `before` returned at `after`.
  void Yielded(Clock::time_point before, Clock::time_point after) {
    if (after - before >= kYieldedAway) no_poll_until_ = after + kBackoff;
  }

 private:
  const Clock::duration window_;
  Clock::time_point last_event_;
  Clock::time_point no_poll_until_{};
};

}  // namespace skiff::ingress::proxy
