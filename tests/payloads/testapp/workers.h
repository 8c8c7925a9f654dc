#pragma once

// CPU work the test app does for the platform's CPU tests: burning CPU inside a request,
// a fire-and-forget background task, and a background thread that spins forever
// (BUSY_THREAD=1) and records when it was stalled (e.g. by a throttled cgroup).

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

namespace skiff::testapp {

int64_t MonotonicNs();   // CLOCK_MONOTONIC: comparable with the host's, same clock
int64_t ThreadCpuNs();   // this thread's CPU time
int64_t ProcessCpuNs();  // the whole process's CPU time

// Busy-loops until this thread has used `cpu_ms` of CPU; returns the iterations done.
uint64_t BurnCpu(uint64_t cpu_ms);

// One fire-and-forget task at a time (a new one replaces the record of the last): a detached
// thread that busy-works for `cpu_ms` of its own CPU time, counting iterations.
class BackgroundTask {
 public:
  void Start(uint64_t cpu_ms);
  // {"iterations": N, "cpu_ms": N, "running": bool, "started_ns": N, "finished_ns": N}
  std::string Json() const;

 private:
  std::atomic<uint64_t> generation_{0};
  std::atomic<uint64_t> iterations_{0};
  std::atomic<int64_t> cpu_ns_{0};
  std::atomic<bool> running_{false};
  std::atomic<int64_t> started_ns_{0};
  std::atomic<int64_t> finished_ns_{0};
};

// A thread that spins forever counting. It reads CLOCK_MONOTONIC every few hundred
// nanoseconds (its heartbeat); a heartbeat more than `stall_ns` after the previous one ends
// a stall, and the stall (its last heartbeat before, first after) is kept in a ring.
class BusyThread {
 public:
  static constexpr int kRing = 256;

  explicit BusyThread(int64_t stall_ns) : stall_ns_(stall_ns) {}
  void Start();
  bool started() const { return started_.load(); }
  // {"count": N, "heartbeat_ns": N, "stalls": N, "now_ns": N} and, when `after_ns` > 0,
  // waits up to `wait_ms` for the first heartbeat after `after_ns` that ended a stall and adds
  // "resumed_ns" (its time) and "stalled_ns" (the heartbeat before it), or "resumed_ns": 0.
  std::string Json(int64_t after_ns, int64_t wait_ms) const;

 private:
  void Run();

  const int64_t stall_ns_;
  std::atomic<bool> started_{false};
  std::atomic<uint64_t> count_{0};
  std::atomic<int64_t> heartbeat_ns_{0};
  std::atomic<uint64_t> stalls_{0};  // stalls recorded; the latest is ring_[(stalls_-1)%kRing]
  struct Stall {
    std::atomic<int64_t> before_ns{0};
    std::atomic<int64_t> after_ns{0};
  };
  Stall ring_[kRing];
};

}  // namespace skiff::testapp
