#pragma once

// The MSR values each vCPU starts with (as Firecracker sets them): the SYSCALL/SYSENTER
// MSRs and KERNEL_GS_BASE zeroed, the TSC at 0, fast strings enabled in MISC_ENABLE, and
// MTRRs enabled with write-back as the default memory type (a guest that reads MTRRs must
// not map RAM uncached).

#include <linux/kvm.h>

#include <cstdint>
#include <vector>

namespace skiff::gen2 {

inline constexpr uint32_t kMsrIa32Tsc = 0x10;
inline constexpr uint32_t kMsrIa32SysenterCs = 0x174;
inline constexpr uint32_t kMsrIa32SysenterEsp = 0x175;
inline constexpr uint32_t kMsrIa32SysenterEip = 0x176;
inline constexpr uint32_t kMsrIa32MiscEnable = 0x1a0;
inline constexpr uint32_t kMsrMtrrDefType = 0x2ff;
inline constexpr uint32_t kMsrStar = 0xc0000081;
inline constexpr uint32_t kMsrLstar = 0xc0000082;
inline constexpr uint32_t kMsrCstar = 0xc0000083;
inline constexpr uint32_t kMsrSyscallMask = 0xc0000084;
inline constexpr uint32_t kMsrKernelGsBase = 0xc0000102;

inline constexpr uint64_t kMiscEnableFastString = 0x1;
inline constexpr uint64_t kMtrrEnable = 0x800;
inline constexpr uint64_t kMtrrTypeWriteBack = 0x6;

std::vector<kvm_msr_entry> BootMsrs();

}  // namespace skiff::gen2
