#include "sandbox/gen2/vmm/kvm.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <utility>

#include "absl/strings/str_format.h"
#include "sandbox/common/status.h"

namespace skiff::gen2 {
namespace {

constexpr int kKvmApiVersion = 12;
constexpr size_t kMaxCpuidEntries = 256;
constexpr size_t kMaxMsrs = 64;

// ioctl() retried on EINTR; returns the result or -1 with errno.
int Ioctl(int fd, unsigned long request, unsigned long arg) {
  int r;
  do {
    r = ioctl(fd, request, arg);
  } while (r < 0 && errno == EINTR);
  return r;
}
template <typename T>
int Ioctl(int fd, unsigned long request, T* arg) {
  return Ioctl(fd, request, reinterpret_cast<unsigned long>(arg));
}

struct Capability {
  int cap;
  const char* name;
};
constexpr Capability kRequired[] = {
    {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
    {KVM_CAP_PIT2, "KVM_CAP_PIT2"},
    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
    {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
    {KVM_CAP_SET_IDENTITY_MAP_ADDR, "KVM_CAP_SET_IDENTITY_MAP_ADDR"},
    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
    {KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
};

// The ioctls whose argument is a header followed by a flexible array. <linux/kvm.h> declares
// those arrays with __DECLARE_FLEX_ARRAY, which in C++ adds an empty struct and makes the
// header 12 or 16 bytes instead of C's 8 — and the struct size is part of the ioctl number.
// So these are spelled with the kernel's (C) sizes and laid out by hand: a 32-bit count,
// 32 bits of padding, then the entries.
constexpr size_t kFlexHeaderSize = 8;
constexpr unsigned long kKvmGetSupportedCpuid =
    _IOC(_IOC_READ | _IOC_WRITE, KVMIO, 0x05, kFlexHeaderSize);
constexpr unsigned long kKvmSetCpuid2 = _IOC(_IOC_WRITE, KVMIO, 0x90, kFlexHeaderSize);
constexpr unsigned long kKvmSetMsrs = _IOC(_IOC_WRITE, KVMIO, 0x89, kFlexHeaderSize);

template <typename Entry>
class FlexArg {
 public:
  explicit FlexArg(size_t n)
      : storage_(new uint64_t[(kFlexHeaderSize + n * sizeof(Entry) + 7) / 8]()) {}
  uint32_t* count() { return reinterpret_cast<uint32_t*>(storage_.get()); }
  Entry* entries() {
    return reinterpret_cast<Entry*>(reinterpret_cast<uint8_t*>(storage_.get()) + kFlexHeaderSize);
  }
  void* get() { return storage_.get(); }

 private:
  std::unique_ptr<uint64_t[]> storage_;
};

}  // namespace

absl::StatusOr<Kvm> Kvm::Open(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, "open(", path, ")");
  const int version = Ioctl(fd.get(), KVM_GET_API_VERSION, 0ul);
  if (version != kKvmApiVersion) {
    return absl::FailedPreconditionError(
        absl::StrFormat("KVM_GET_API_VERSION(%s): %d, want %d", path, version, kKvmApiVersion));
  }
  return Kvm(std::move(fd));
}

int Kvm::CheckExtension(int cap) const {
  const int r = Ioctl(fd_.get(), KVM_CHECK_EXTENSION, static_cast<unsigned long>(cap));
  return r < 0 ? 0 : r;
}

absl::Status Kvm::CheckCapabilities() const {
  for (const Capability& c : kRequired) {
    if (CheckExtension(c.cap) <= 0) {
      return absl::FailedPreconditionError(absl::StrCat("KVM lacks ", c.name));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<kvm_cpuid_entry2>> Kvm::SupportedCpuid() const {
  FlexArg<kvm_cpuid_entry2> arg(kMaxCpuidEntries);
  *arg.count() = kMaxCpuidEntries;
  if (Ioctl(fd_.get(), kKvmGetSupportedCpuid, arg.get()) < 0) {
    return ErrnoStatus(errno, "KVM_GET_SUPPORTED_CPUID(", kMaxCpuidEntries, " entries)");
  }
  const uint32_t n = std::min<uint32_t>(*arg.count(), kMaxCpuidEntries);
  return std::vector<kvm_cpuid_entry2>(arg.entries(), arg.entries() + n);
}

absl::StatusOr<Vm> Kvm::CreateVm() const {
  const int run_size = Ioctl(fd_.get(), KVM_GET_VCPU_MMAP_SIZE, 0ul);
  if (run_size < static_cast<int>(sizeof(kvm_run))) {
    return ErrnoStatus(errno, "KVM_GET_VCPU_MMAP_SIZE");
  }
  const int fd = Ioctl(fd_.get(), KVM_CREATE_VM, 0ul);
  if (fd < 0) return ErrnoStatus(errno, "KVM_CREATE_VM");
  // KVM fds are created close-on-exec (anon inodes with O_CLOEXEC).
  return Vm(UniqueFd(fd), static_cast<size_t>(run_size));
}

absl::Status Vm::SetTssAddr(uint64_t addr) const {
  if (Ioctl(fd_.get(), KVM_SET_TSS_ADDR, static_cast<unsigned long>(addr)) < 0) {
    return ErrnoStatus(errno, absl::StrFormat("KVM_SET_TSS_ADDR(%#x)", addr));
  }
  return absl::OkStatus();
}

absl::Status Vm::SetIdentityMapAddr(uint64_t addr) const {
  uint64_t a = addr;
  if (Ioctl(fd_.get(), KVM_SET_IDENTITY_MAP_ADDR, &a) < 0) {
    return ErrnoStatus(errno, absl::StrFormat("KVM_SET_IDENTITY_MAP_ADDR(%#x)", addr));
  }
  return absl::OkStatus();
}

absl::Status Vm::CreateIrqchip() const {
  if (Ioctl(fd_.get(), KVM_CREATE_IRQCHIP, 0ul) < 0) {
    return ErrnoStatus(errno, "KVM_CREATE_IRQCHIP");
  }
  return absl::OkStatus();
}

absl::Status Vm::CreatePit2() const {
  kvm_pit_config config{};
  config.flags = KVM_PIT_SPEAKER_DUMMY;  // port 0x61 handled in the kernel
  if (Ioctl(fd_.get(), KVM_CREATE_PIT2, &config) < 0) {
    return ErrnoStatus(errno, "KVM_CREATE_PIT2");
  }
  return absl::OkStatus();
}

absl::Status Vm::SetMemoryRegions(const GuestMemory& memory) const {
  uint32_t slot = 0;
  for (const MemoryRegion& r : memory.regions()) {
    kvm_userspace_memory_region region{};
    region.slot = slot++;
    region.guest_phys_addr = r.gpa;
    region.memory_size = r.size;
    region.userspace_addr = reinterpret_cast<uint64_t>(r.host);
    if (Ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &region) < 0) {
      return ErrnoStatus(errno,
                         absl::StrFormat("KVM_SET_USER_MEMORY_REGION(slot %d, gpa %#x, %#x bytes)",
                                         region.slot, r.gpa, r.size));
    }
  }
  return absl::OkStatus();
}

absl::Status Vm::IrqLine(uint32_t gsi, bool level) const {
  kvm_irq_level irq{};
  irq.irq = gsi;
  irq.level = level ? 1 : 0;
  if (Ioctl(fd_.get(), KVM_IRQ_LINE, &irq) < 0) {
    return ErrnoStatus(errno, "KVM_IRQ_LINE(gsi ", gsi, ", level ", irq.level, ")");
  }
  return absl::OkStatus();
}

absl::StatusOr<UniqueFd> Vm::CreateIrqfd(uint32_t gsi) const {
  UniqueFd event(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!event) return ErrnoStatus(errno, "eventfd(irqfd for gsi ", gsi, ")");
  kvm_irqfd irqfd{};
  irqfd.fd = static_cast<uint32_t>(event.get());
  irqfd.gsi = gsi;
  if (Ioctl(fd_.get(), KVM_IRQFD, &irqfd) < 0) {
    return ErrnoStatus(errno, "KVM_IRQFD(gsi ", gsi, ")");
  }
  return event;
}

absl::StatusOr<Vcpu> Vm::CreateVcpu(uint32_t index) const {
  UniqueFd fd(Ioctl(fd_.get(), KVM_CREATE_VCPU, static_cast<unsigned long>(index)));
  if (!fd) return ErrnoStatus(errno, "KVM_CREATE_VCPU(", index, ")");
  void* run = mmap(nullptr, run_size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (run == MAP_FAILED) return ErrnoStatus(errno, "mmap(kvm_run of vcpu ", index, ")");
  return Vcpu(index, std::move(fd), static_cast<kvm_run*>(run), run_size_);
}

Vcpu::Vcpu(Vcpu&& other) noexcept
    : index_(other.index_),
      fd_(std::move(other.fd_)),
      run_(std::exchange(other.run_, nullptr)),
      run_size_(std::exchange(other.run_size_, 0)) {}

Vcpu& Vcpu::operator=(Vcpu&& other) noexcept {
  if (this != &other) {
    Unmap();
    index_ = other.index_;
    fd_ = std::move(other.fd_);
    run_ = std::exchange(other.run_, nullptr);
    run_size_ = std::exchange(other.run_size_, 0);
  }
  return *this;
}

Vcpu::~Vcpu() { Unmap(); }

void Vcpu::Unmap() {
  if (run_ != nullptr) munmap(run_, run_size_);
  run_ = nullptr;
}

absl::Status Vcpu::SetCpuid(const std::vector<kvm_cpuid_entry2>& entries) const {
  FlexArg<kvm_cpuid_entry2> arg(entries.size());
  *arg.count() = static_cast<uint32_t>(entries.size());
  std::copy(entries.begin(), entries.end(), arg.entries());
  if (Ioctl(fd_.get(), kKvmSetCpuid2, arg.get()) < 0) {
    return ErrnoStatus(errno, "KVM_SET_CPUID2(vcpu ", index_, ", ", entries.size(), " entries)");
  }
  return absl::OkStatus();
}

absl::Status Vcpu::SetMsrs(const std::vector<kvm_msr_entry>& msrs) const {
  if (msrs.size() > kMaxMsrs) return absl::InvalidArgumentError("KVM_SET_MSRS: too many MSRs");
  FlexArg<kvm_msr_entry> arg(msrs.size());
  *arg.count() = static_cast<uint32_t>(msrs.size());
  std::copy(msrs.begin(), msrs.end(), arg.entries());
  const int set = Ioctl(fd_.get(), kKvmSetMsrs, arg.get());
  if (set < 0) return ErrnoStatus(errno, "KVM_SET_MSRS(vcpu ", index_, ")");
  if (static_cast<size_t>(set) != msrs.size()) {
    // KVM stops at the first MSR it refuses.
    return absl::FailedPreconditionError(absl::StrFormat(
        "KVM_SET_MSRS(vcpu %d): MSR %#x refused", index_, msrs[static_cast<size_t>(set)].index));
  }
  return absl::OkStatus();
}

absl::StatusOr<kvm_sregs> Vcpu::GetSregs() const {
  kvm_sregs sregs{};
  if (Ioctl(fd_.get(), KVM_GET_SREGS, &sregs) < 0) {
    return ErrnoStatus(errno, "KVM_GET_SREGS(vcpu ", index_, ")");
  }
  return sregs;
}

absl::Status Vcpu::SetSregs(const kvm_sregs& sregs) const {
  if (Ioctl(fd_.get(), KVM_SET_SREGS, const_cast<kvm_sregs*>(&sregs)) < 0) {
    return ErrnoStatus(errno, "KVM_SET_SREGS(vcpu ", index_, ")");
  }
  return absl::OkStatus();
}

absl::StatusOr<kvm_regs> Vcpu::GetRegs() const {
  kvm_regs regs{};
  if (Ioctl(fd_.get(), KVM_GET_REGS, &regs) < 0) {
    return ErrnoStatus(errno, "KVM_GET_REGS(vcpu ", index_, ")");
  }
  return regs;
}

absl::Status Vcpu::SetRegs(const kvm_regs& regs) const {
  if (Ioctl(fd_.get(), KVM_SET_REGS, const_cast<kvm_regs*>(&regs)) < 0) {
    return ErrnoStatus(errno, "KVM_SET_REGS(vcpu ", index_, ")");
  }
  return absl::OkStatus();
}

absl::Status Vcpu::SetFpu(const kvm_fpu& fpu) const {
  if (Ioctl(fd_.get(), KVM_SET_FPU, const_cast<kvm_fpu*>(&fpu)) < 0) {
    return ErrnoStatus(errno, "KVM_SET_FPU(vcpu ", index_, ")");
  }
  return absl::OkStatus();
}

absl::StatusOr<kvm_lapic_state> Vcpu::GetLapic() const {
  kvm_lapic_state lapic{};
  if (Ioctl(fd_.get(), KVM_GET_LAPIC, &lapic) < 0) {
    return ErrnoStatus(errno, "KVM_GET_LAPIC(vcpu ", index_, ")");
  }
  return lapic;
}

absl::Status Vcpu::SetLapic(const kvm_lapic_state& lapic) const {
  if (Ioctl(fd_.get(), KVM_SET_LAPIC, const_cast<kvm_lapic_state*>(&lapic)) < 0) {
    return ErrnoStatus(errno, "KVM_SET_LAPIC(vcpu ", index_, ")");
  }
  return absl::OkStatus();
}

int Vcpu::Run() const {
  // Not retried here: EINTR means "kicked", the caller decides.
  return ioctl(fd_.get(), KVM_RUN, 0) < 0 ? errno : 0;
}

}  // namespace skiff::gen2
