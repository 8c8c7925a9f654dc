#pragma once

// Thin owners of the three kinds of KVM file descriptor: the system (/dev/kvm), a VM and
// a vCPU (with its mmap'ed struct kvm_run). Each call is one ioctl whose failure becomes a
// Status naming the ioctl and its argument. Nothing here knows about booting.
//
// Threads: a Vcpu is used by the one thread that runs it, except kvm_run's immediate_exit,
// which any thread may set to stop it. Vm ioctls used after setup (IrqLine) are safe from
// any thread.

#include <linux/kvm.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sandbox/common/unique_fd.h"
#include "sandbox/gen2/vmm/guest_memory.h"

namespace skiff::gen2 {

class Vcpu;
class Vm;

class Kvm {
 public:
  // Opens /dev/kvm (or `path`) and checks the API version.
  static absl::StatusOr<Kvm> Open(const std::string& path = "/dev/kvm");

  // FAILED_PRECONDITION naming the first capability the VMM needs that KVM lacks.
  absl::Status CheckCapabilities() const;
  // KVM_CHECK_EXTENSION: > 0 if present (some return a count), 0 if not.
  int CheckExtension(int cap) const;

  absl::StatusOr<std::vector<kvm_cpuid_entry2>> SupportedCpuid() const;
  absl::StatusOr<Vm> CreateVm() const;

 private:
  explicit Kvm(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

class Vm {
 public:
  Vm(Vm&&) = default;
  Vm& operator=(Vm&&) = default;

  absl::Status SetTssAddr(uint64_t addr) const;
  absl::Status SetIdentityMapAddr(uint64_t addr) const;
  absl::Status CreateIrqchip() const;
  absl::Status CreatePit2() const;
  // One memory slot per region of `memory`, in order. The memory must outlive the VM's use.
  absl::Status SetMemoryRegions(const GuestMemory& memory) const;
  // KVM_IRQ_LINE: sets the level of a GSI on the in-kernel irqchip.
  absl::Status IrqLine(uint32_t gsi, bool level) const;
  // An eventfd registered with KVM_IRQFD: writing 1 to it raises an edge on `gsi`.
  absl::StatusOr<UniqueFd> CreateIrqfd(uint32_t gsi) const;
  absl::StatusOr<Vcpu> CreateVcpu(uint32_t index) const;

  int fd() const { return fd_.get(); }

 private:
  friend class Kvm;
  Vm(UniqueFd fd, size_t run_size) : fd_(std::move(fd)), run_size_(run_size) {}
  UniqueFd fd_;
  size_t run_size_ = 0;  // KVM_GET_VCPU_MMAP_SIZE
};

class Vcpu {
 public:
  Vcpu(Vcpu&& other) noexcept;
  Vcpu& operator=(Vcpu&& other) noexcept;
  Vcpu(const Vcpu&) = delete;
  Vcpu& operator=(const Vcpu&) = delete;
  ~Vcpu();

  uint32_t index() const { return index_; }
  kvm_run* run() const { return run_; }

  absl::Status SetCpuid(const std::vector<kvm_cpuid_entry2>& entries) const;
  absl::Status SetMsrs(const std::vector<kvm_msr_entry>& msrs) const;
  absl::StatusOr<kvm_sregs> GetSregs() const;
  absl::Status SetSregs(const kvm_sregs& sregs) const;
  absl::StatusOr<kvm_regs> GetRegs() const;
  absl::Status SetRegs(const kvm_regs& regs) const;
  absl::Status SetFpu(const kvm_fpu& fpu) const;
  absl::StatusOr<kvm_lapic_state> GetLapic() const;
  absl::Status SetLapic(const kvm_lapic_state& lapic) const;

  // KVM_RUN: 0 on an exit to user space (see run()->exit_reason), else the errno.
  int Run() const;

 private:
  friend class Vm;
  Vcpu(uint32_t index, UniqueFd fd, kvm_run* run, size_t run_size)
      : index_(index), fd_(std::move(fd)), run_(run), run_size_(run_size) {}
  void Unmap();

  uint32_t index_ = 0;
  UniqueFd fd_;
  kvm_run* run_ = nullptr;
  size_t run_size_ = 0;
};

}  // namespace skiff::gen2
