#include "sandbox/gen2/vmm/cpuid.h"

namespace skiff::gen2 {
namespace {

constexpr uint32_t kLeafFeatures = 0x1;
constexpr uint32_t kLeafCacheParams = 0x4;
constexpr uint32_t kLeafPerfMon = 0xa;
constexpr uint32_t kLeafTopology = 0xb;
constexpr uint32_t kLeafTopologyV2 = 0x1f;
constexpr uint32_t kLeafAmdSizes = 0x80000008;

constexpr uint32_t kEcxMonitor = 1u << 3;
constexpr uint32_t kEcxHypervisor = 1u << 31;
constexpr uint32_t kEdxHtt = 1u << 28;

constexpr uint32_t kTopologyLevelSmt = 1;
constexpr uint32_t kTopologyLevelCore = 2;

// Bits needed to number `n` things (the x2APIC id shift of a topology level).
uint32_t Bits(uint32_t n) {
  uint32_t bits = 0;
  while ((1u << bits) < n) ++bits;
  return bits;
}

}  // namespace

std::vector<kvm_cpuid_entry2> CpuidForVcpu(const std::vector<kvm_cpuid_entry2>& supported,
                                           uint32_t index, uint32_t vcpus) {
  std::vector<kvm_cpuid_entry2> out = supported;
  for (kvm_cpuid_entry2& e : out) {
    switch (e.function) {
      case kLeafFeatures:
        e.ebx = (e.ebx & 0x0000ffff) | ((vcpus & 0xff) << 16) | ((index & 0xff) << 24);
        e.ecx = (e.ecx | kEcxHypervisor) & ~kEcxMonitor;
        e.edx = vcpus > 1 ? (e.edx | kEdxHtt) : (e.edx & ~kEdxHtt);
        break;
      case kLeafCacheParams:
        // EAX[31:26]: addressable core ids per package - 1.
        if (e.eax & 0x1f) e.eax = (e.eax & 0x03ffffff) | (((vcpus - 1) & 0x3f) << 26);
        break;
      case kLeafPerfMon:
        e.eax = e.ebx = e.ecx = e.edx = 0;
        break;
      case kLeafTopology:
      case kLeafTopologyV2:
        e.edx = index;
        if (e.index == 0) {
          e.eax = 0;  // no SMT: thread bits shift by 0
          e.ebx = 1;
          e.ecx = (kTopologyLevelSmt << 8) | 0;
        } else if (e.index == 1) {
          e.eax = Bits(vcpus);
          e.ebx = vcpus;
          e.ecx = (kTopologyLevelCore << 8) | 1;
        } else {
          e.eax = e.ebx = 0;
          e.ecx = e.index;  // level type 0: invalid, ends the enumeration
        }
        break;
      case kLeafAmdSizes:
        e.ecx = (e.ecx & ~0xf0ffu) | (Bits(vcpus) << 12) | ((vcpus - 1) & 0xff);
        break;
      default:
        break;
    }
  }
  return out;
}

}  // namespace skiff::gen2
