#pragma once

// Runs every vCPU on its own thread and ends them together.
//
// Each thread loops on KVM_RUN and handles the exits that reach user space: port I/O and
// MMIO go to the buses; EINTR/EAGAIN (a kick, or an AP's first run before its SIPI) and
// KVM_EXIT_INTR run again; a triple fault, a KVM system event, or an error (a failed entry,
// an internal error, an unexpected exit, KVM_RUN failing) ends the VM. Ending — from a
// vCPU thread (the i8042 reset, an exit) or any other thread (Stop) — is RequestStop(): the
// first request wins and records the VM's end; every vCPU's kvm_run gets immediate_exit and
// every running thread a signal (kKickSignal, whose handler does nothing) so KVM_RUN returns
// EINTR, and the threads return. Wait() joins them.
//
// Threads are created gated (Start) so the caller can confine the process (seccomp, TSYNC)
// before any guest code runs, then let them go (Release).

#include <pthread.h>

#include <atomic>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "sandbox/gen2/vmm/bus.h"
#include "sandbox/gen2/vmm/kvm.h"
#include "sandbox/gen2/vmm/vm_exit.h"

namespace skiff::gen2 {

class VcpuRunner {
 public:
  // All pointers must outlive the runner.
  VcpuRunner(std::vector<Vcpu>* vcpus, const Bus* pio, const Bus* mmio)
      : vcpus_(vcpus), pio_(pio), mmio_(mmio) {}
  ~VcpuRunner();  // stops and joins threads still running
  VcpuRunner(const VcpuRunner&) = delete;
  VcpuRunner& operator=(const VcpuRunner&) = delete;

  // The signal that kicks a vCPU thread out of KVM_RUN (a real-time signal glibc does not use).
  static int KickSignal();

  // Creates one thread per vCPU, each waiting for Release().
  absl::Status Start();
  void Release();
  // Ends the VM (thread-safe; the first call wins; later calls do nothing).
  void RequestStop(VmExit exit);
  // Blocks until a stop is requested, then joins every thread and returns the VM's end.
  VmExit Wait();
  bool stopping() const { return stopping_.load(std::memory_order_acquire); }

 private:
  void ThreadMain(size_t index);
  // Handles one exit; returns false when the thread must end.
  bool HandleExit(Vcpu& vcpu);
  void KickAllLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::vector<Vcpu>* const vcpus_;
  const Bus* const pio_;
  const Bus* const mmio_;
  std::vector<std::thread> threads_;  // touched by the owner thread only
  absl::Notification released_;
  std::atomic<bool> stopping_{false};

  absl::Mutex mu_;
  bool stop_requested_ ABSL_GUARDED_BY(mu_) = false;
  VmExit exit_ ABSL_GUARDED_BY(mu_);
  // pthread ids of the threads that are running (set at thread start).
  std::vector<pthread_t> running_ ABSL_GUARDED_BY(mu_);
  std::vector<bool> has_thread_ ABSL_GUARDED_BY(mu_);
  std::vector<bool> started_ ABSL_GUARDED_BY(mu_);  // reached ThreadMain
};

}  // namespace skiff::gen2
