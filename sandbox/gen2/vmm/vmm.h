#pragma once

// The gen2 VMM: one microVM, built by Create() as a linear checklist and run by Run().
//
//   Create: validate the config → open /dev/kvm, check capabilities → create the VM → guest
//   memory → its TSS and identity-map pages, the in-kernel irqchip and PIT → load the
//   kernel (bzImage or ELF) → load the initramfs → devices (COM1, i8042, the virtio-mmio
//   slots) → the command line → the zero page, the MP table, GDT and page tables → vCPUs
//   (CPUID, MSRs, FPU, LAPIC LINT0/1; the boot vCPU's registers at the 64-bit entry).
//   Run: start the vCPU threads and the device thread, confine the process (seccomp), let
//   the vCPUs go, wait for the VM to end, join everything, return how it ended.
//
// Everything Create acquires is owned by the Vmm: a failure half-way releases it all, as
// does destroying the Vmm (threads joined first, then devices, vCPUs, VM, memory).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "sandbox/gen2/devices/event_loop.h"
#include "sandbox/gen2/devices/i8042.h"
#include "sandbox/gen2/devices/serial.h"
#include "sandbox/gen2/devices/virtio/device.h"
#include "sandbox/gen2/devices/virtio/mmio_transport.h"
#include "sandbox/gen2/vmm/boot/setup_header.h"
#include "sandbox/gen2/vmm/bus.h"
#include "sandbox/gen2/vmm/guest_memory.h"
#include "sandbox/gen2/vmm/interrupt.h"
#include "sandbox/gen2/vmm/kvm.h"
#include "sandbox/gen2/vmm/vcpu_runner.h"
#include "sandbox/gen2/vmm/vm_exit.h"

namespace skiff::gen2 {

// A virtio device to attach at a virtio-mmio slot (layout.h: kSlotBlock, kSlotNet, ...).
struct VirtioSlotConfig {
  uint32_t slot = 0;
  // Builds the device; called once by Create with the VMM's device-thread loop (for devices
  // with host fds to watch) and the guest memory.
  std::function<absl::StatusOr<std::shared_ptr<virtio::VirtioDevice>>(EventLoop* loop,
                                                                      const GuestMemory& memory)>
      create;
};

struct VmmConfig {
  std::string kernel_path;     // bzImage or ELF vmlinux
  std::string initramfs_path;  // optional
  std::string cmdline;         // the VMM appends the virtio_mmio.device= arguments
  uint64_t memory_bytes = 128ull << 20;
  uint32_t vcpus = 1;
  // The guest's console (COM1) is written here; not owned, must stay open while the Vmm
  // lives. Ignored when quiet (output dropped). -1 is also quiet.
  int console_fd = -1;
  bool quiet = false;
  // Install the seccomp filter in Run(). It covers the whole process, irrevocably: only an
  // in-process test that must go on afterwards turns it off.
  bool seccomp = true;
  std::vector<VirtioSlotConfig> virtio;
};

// The one validation of a config (ranges, paths present); Create calls it first.
absl::Status ValidateVmmConfig(const VmmConfig& config);

class Vmm {
 public:
  static absl::StatusOr<std::unique_ptr<Vmm>> Create(VmmConfig config);
  ~Vmm();
  Vmm(const Vmm&) = delete;
  Vmm& operator=(const Vmm&) = delete;

  // Runs the VM until it ends. Only once per Vmm; a second call returns kError.
  VmExit Run();
  // Ends the VM from any thread (Run returns kStopped unless it had already ended).
  void Stop();

  const GuestMemory& memory() const { return memory_; }
  const std::string& cmdline() const { return cmdline_; }
  const Serial& serial() const { return *serial_; }
  // The transport at `slot`, or null if nothing is attached there.
  const virtio::MmioTransport* virtio_transport(uint32_t slot) const;

 private:
  explicit Vmm(VmmConfig config);

  absl::Status OpenKvm();
  absl::Status CreateVm();
  absl::Status CreateMemory();
  absl::Status CreateIrqchip();
  absl::Status LoadKernel();
  absl::Status LoadInitramfs();
  absl::Status CreateLegacyDevices();
  absl::Status CreateVirtioDevices();
  absl::Status WriteCmdline();
  absl::Status WriteBootStructures();
  absl::Status CreateVcpus();
  absl::Status ConfigureVcpu(Vcpu& vcpu, const std::vector<kvm_cpuid_entry2>& supported);

  VmmConfig config_;
  // Declared in construction order; destroyed in reverse (threads first, memory last).
  GuestMemory memory_;
  std::unique_ptr<Kvm> kvm_;
  std::unique_ptr<Vm> vm_;
  std::vector<Vcpu> vcpus_;
  std::vector<std::unique_ptr<Interrupt>> interrupts_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<Serial> serial_;
  std::unique_ptr<I8042> i8042_;
  std::vector<std::pair<uint32_t, std::unique_ptr<virtio::MmioTransport>>> transports_;
  Bus pio_{Bus::Kind::kPio};
  Bus mmio_{Bus::Kind::kMmio};
  std::unique_ptr<VcpuRunner> runner_;
  std::thread device_thread_;
  bool ran_ = false;

  // What the kernel file said.
  boot::SetupHeader header_{};
  size_t header_size_ = 0;
  uint64_t entry_ = 0;
  uint64_t kernel_end_ = 0;
  uint64_t initrd_addr_ = 0;
  uint64_t initrd_size_ = 0;
  std::string cmdline_;
};

}  // namespace skiff::gen2
