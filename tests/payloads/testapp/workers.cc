#include "tests/payloads/testapp/workers.h"

#include <time.h>

#include <cstdio>
#include <thread>

namespace skiff::testapp {
namespace {

int64_t ClockNs(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

}  // namespace

int64_t MonotonicNs() { return ClockNs(CLOCK_MONOTONIC); }
int64_t ThreadCpuNs() { return ClockNs(CLOCK_THREAD_CPUTIME_ID); }
int64_t ProcessCpuNs() { return ClockNs(CLOCK_PROCESS_CPUTIME_ID); }

uint64_t BurnCpu(uint64_t cpu_ms) {
  const int64_t end = ThreadCpuNs() + static_cast<int64_t>(cpu_ms) * 1000000;
  uint64_t iterations = 0;
  volatile uint64_t sink = 0;
  do {
    for (int i = 0; i < 1000; ++i) sink = sink + static_cast<uint64_t>(i);
    ++iterations;
  } while (ThreadCpuNs() < end);
  return iterations;
}

void BackgroundTask::Start(uint64_t cpu_ms) {
  uint64_t gen = generation_.fetch_add(1) + 1;
  iterations_ = 0;
  cpu_ns_ = 0;
  started_ns_ = MonotonicNs();
  finished_ns_ = 0;
  running_ = true;
  std::thread([this, gen, cpu_ms] {
    const int64_t start = ThreadCpuNs();
    const int64_t end = start + static_cast<int64_t>(cpu_ms) * 1000000;
    volatile uint64_t sink = 0;
    for (;;) {
      for (int i = 0; i < 1000; ++i) sink = sink + static_cast<uint64_t>(i);
      int64_t now = ThreadCpuNs();
      if (generation_.load() != gen) return;  // replaced by a newer task: stop quietly
      iterations_.fetch_add(1);
      cpu_ns_ = now - start;
      if (now >= end) break;
    }
    finished_ns_ = MonotonicNs();
    running_ = false;
  }).detach();
}

std::string BackgroundTask::Json() const {
  char buf[256];
  snprintf(buf, sizeof(buf),
           "{\"iterations\": %llu, \"cpu_ms\": %.3f, \"running\": %s, \"started_ns\": %lld, "
           "\"finished_ns\": %lld}\n",
           static_cast<unsigned long long>(iterations_.load()),
           static_cast<double>(cpu_ns_.load()) / 1e6, running_.load() ? "true" : "false",
           static_cast<long long>(started_ns_.load()), static_cast<long long>(finished_ns_.load()));
  return buf;
}

void BusyThread::Start() {
  if (started_.exchange(true)) return;
  std::thread([this] { Run(); }).detach();
}

void BusyThread::Run() {
  int64_t last = MonotonicNs();
  heartbeat_ns_ = last;
  uint64_t count = 0;
  volatile uint64_t sink = 0;
  for (;;) {
    for (int i = 0; i < 64; ++i) sink = sink + static_cast<uint64_t>(i);
    count += 64;
    int64_t now = MonotonicNs();
    if (now - last > stall_ns_) {
      uint64_t n = stalls_.load(std::memory_order_relaxed);
      Stall& s = ring_[n % kRing];
      s.before_ns.store(last, std::memory_order_relaxed);
      s.after_ns.store(now, std::memory_order_relaxed);
      stalls_.store(n + 1, std::memory_order_release);
    }
    last = now;
    heartbeat_ns_.store(now, std::memory_order_relaxed);
    count_.store(count, std::memory_order_relaxed);
  }
}

std::string BusyThread::Json(int64_t after_ns, int64_t wait_ms) const {
  int64_t resumed = 0, stalled = 0;
  if (after_ns > 0) {
    const int64_t deadline = MonotonicNs() + wait_ms * 1000000;
    for (;;) {
      // The newest stalls first; the answer is the oldest one that resumed after after_ns.
      uint64_t n = stalls_.load(std::memory_order_acquire);
      for (uint64_t i = n; i > 0 && i + kRing > n; --i) {
        const Stall& s = ring_[(i - 1) % kRing];
        int64_t a = s.after_ns.load(std::memory_order_relaxed);
        if (a <= after_ns) break;
        resumed = a;
        stalled = s.before_ns.load(std::memory_order_relaxed);
      }
      if (resumed != 0 || MonotonicNs() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
  char buf[320];
  snprintf(buf, sizeof(buf),
           "{\"count\": %llu, \"heartbeat_ns\": %lld, \"stalls\": %llu, \"now_ns\": %lld, "
           "\"resumed_ns\": %lld, \"stalled_ns\": %lld}\n",
           static_cast<unsigned long long>(count_.load()),
           static_cast<long long>(heartbeat_ns_.load()),
           static_cast<unsigned long long>(stalls_.load()), static_cast<long long>(MonotonicNs()),
           static_cast<long long>(resumed), static_cast<long long>(stalled));
  return buf;
}

}  // namespace skiff::testapp
