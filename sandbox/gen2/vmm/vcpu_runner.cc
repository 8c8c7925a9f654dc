#include "sandbox/gen2/vmm/vcpu_runner.h"

#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <mutex>

#include "absl/strings/str_format.h"
#include "sandbox/common/status.h"

namespace skiff::gen2 {
namespace {

void NoopHandler(int) {}

// " at rip 0x..." for error messages, best effort.
std::string Where(const Vcpu& vcpu) {
  absl::StatusOr<kvm_regs> regs = vcpu.GetRegs();
  return regs.ok() ? absl::StrFormat(" at rip %#x", regs->rip) : "";
}

void InstallKickHandler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_handler = NoopHandler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: KVM_RUN must return EINTR
    sigaction(VcpuRunner::KickSignal(), &sa, nullptr);
  });
}

}  // namespace

const char* VmEndName(VmEnd end) {
  switch (end) {
    case VmEnd::kReset:
      return "reset";
    case VmEnd::kPowerOff:
      return "power-off";
    case VmEnd::kShutdown:
      return "triple-fault";
    case VmEnd::kStopped:
      return "stopped";
    case VmEnd::kError:
      return "error";
  }
  return "?";
}

int VcpuRunner::KickSignal() { return SIGRTMIN; }

VcpuRunner::~VcpuRunner() {
  if (!threads_.empty()) {
    RequestStop({VmEnd::kStopped, absl::OkStatus()});
    Wait();
  }
}

absl::Status VcpuRunner::Start() {
  InstallKickHandler();
  {
    absl::MutexLock lock(&mu_);
    running_.assign(vcpus_->size(), pthread_t{});
    has_thread_.assign(vcpus_->size(), false);
    started_.assign(vcpus_->size(), false);
  }
  for (size_t i = 0; i < vcpus_->size(); ++i) {
    threads_.emplace_back([this, i] { ThreadMain(i); });
  }
  // Wait until every thread runs our code: glibc's thread start-up (set_robust_list, rseq,
  // sched_getparam) must be over before the caller installs a seccomp filter.
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](std::vector<bool>* started) {
        return std::all_of(started->begin(), started->end(), [](bool b) { return b; });
      },
      &started_));
  return absl::OkStatus();
}

void VcpuRunner::Release() {
  if (!released_.HasBeenNotified()) released_.Notify();
}

void VcpuRunner::KickAllLocked() {
  for (Vcpu& vcpu : *vcpus_) {
    // Makes the next (or a pending) KVM_RUN return EINTR at once.
    __atomic_store_n(&vcpu.run()->immediate_exit, 1, __ATOMIC_SEQ_CST);
  }
  for (size_t i = 0; i < running_.size(); ++i) {
    if (has_thread_[i]) pthread_kill(running_[i], KickSignal());
  }
}

void VcpuRunner::RequestStop(VmExit exit) {
  absl::MutexLock lock(&mu_);
  if (stop_requested_) return;
  stop_requested_ = true;
  exit_ = std::move(exit);
  stopping_.store(true, std::memory_order_release);
  KickAllLocked();
}

VmExit VcpuRunner::Wait() {
  {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&stop_requested_));
  }
  // Threads still gated leave at once (they see stopping_).
  if (!released_.HasBeenNotified()) released_.Notify();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  absl::MutexLock lock(&mu_);
  return exit_;
}

void VcpuRunner::ThreadMain(size_t index) {
  {
    absl::MutexLock lock(&mu_);
    running_[index] = pthread_self();
    has_thread_[index] = true;
    started_[index] = true;
  }
  released_.WaitForNotification();
  Vcpu& vcpu = (*vcpus_)[index];
  while (!stopping()) {
    const int err = vcpu.Run();
    if (err == EINTR || err == EAGAIN) continue;
    if (err != 0) {
      RequestStop({VmEnd::kError, ErrnoStatus(err, "KVM_RUN(vcpu ", index, ")")});
      break;
    }
    if (!HandleExit(vcpu)) break;
  }
  absl::MutexLock lock(&mu_);
  has_thread_[index] = false;
}

bool VcpuRunner::HandleExit(Vcpu& vcpu) {
  kvm_run* run = vcpu.run();
  switch (run->exit_reason) {
    case KVM_EXIT_IO: {
      uint8_t* data = reinterpret_cast<uint8_t*>(run) + run->io.data_offset;
      const size_t size = run->io.size;
      // String I/O (rep ins/outs) arrives as `count` back-to-back accesses.
      for (uint32_t i = 0; i < run->io.count; ++i) {
        std::span<uint8_t> chunk(data + i * size, size);
        if (run->io.direction == KVM_EXIT_IO_OUT) {
          pio_->Write(run->io.port, chunk);
        } else {
          pio_->Read(run->io.port, chunk);
        }
      }
      return true;
    }
    case KVM_EXIT_MMIO: {
      const size_t len = std::min<size_t>(run->mmio.len, sizeof(run->mmio.data));
      std::span<uint8_t> data(run->mmio.data, len);
      if (run->mmio.is_write) {
        mmio_->Write(run->mmio.phys_addr, data);
      } else {
        mmio_->Read(run->mmio.phys_addr, data);
      }
      return true;
    }
    case KVM_EXIT_INTR:
      return true;
    case KVM_EXIT_SHUTDOWN:
      RequestStop({VmEnd::kShutdown, absl::OkStatus()});
      return false;
    case KVM_EXIT_SYSTEM_EVENT:
      switch (run->system_event.type) {
        case KVM_SYSTEM_EVENT_SHUTDOWN:
          RequestStop({VmEnd::kPowerOff, absl::OkStatus()});
          return false;
        case KVM_SYSTEM_EVENT_RESET:
          RequestStop({VmEnd::kReset, absl::OkStatus()});
          return false;
        default:
          RequestStop({VmEnd::kError,
                       absl::InternalError(absl::StrFormat("vcpu %d: KVM system event %d",
                                                           vcpu.index(), run->system_event.type))});
          return false;
      }
    case KVM_EXIT_FAIL_ENTRY:
      RequestStop(
          {VmEnd::kError, absl::InternalError(absl::StrFormat(
                              "vcpu %d: KVM_EXIT_FAIL_ENTRY, hardware reason %#x%s", vcpu.index(),
                              run->fail_entry.hardware_entry_failure_reason, Where(vcpu)))});
      return false;
    case KVM_EXIT_INTERNAL_ERROR:
      RequestStop({VmEnd::kError, absl::InternalError(absl::StrFormat(
                                      "vcpu %d: KVM_EXIT_INTERNAL_ERROR, suberror %d%s",
                                      vcpu.index(), run->internal.suberror, Where(vcpu)))});
      return false;
    default:
      RequestStop({VmEnd::kError, absl::InternalError(absl::StrFormat(
                                      "vcpu %d: unexpected KVM exit reason %d%s", vcpu.index(),
                                      run->exit_reason, Where(vcpu)))});
      return false;
  }
}

}  // namespace skiff::gen2
