#pragma once

// The CPUID table one vCPU sees: KVM's supported set (KVM_GET_SUPPORTED_CPUID) with
//   - leaf 1: initial APIC id = the vCPU index, logical processor count = vCPUs, HTT when
//     there is more than one, the hypervisor bit set;
//   - leaves 0xb and 0x1f (extended topology): one thread per core, `vcpus` cores, the
//     x2APIC id = the vCPU index; leaf 4's cores-per-package field to match;
//   - AMD leaf 0x80000008: ECX's core count to match;
//   - leaf 0xa (architectural performance monitoring) zeroed: no PMU is offered;
//   - leaf 1's MONITOR/MWAIT masked (a guest must not wait on something we never write);
//   - KVM's paravirt leaves (0x40000000..) kept as KVM reports them, so kvmclock works.
// Pure function of its inputs: unit-tested without /dev/kvm.

#include <linux/kvm.h>

#include <cstdint>
#include <vector>

namespace skiff::gen2 {

std::vector<kvm_cpuid_entry2> CpuidForVcpu(const std::vector<kvm_cpuid_entry2>& supported,
                                           uint32_t index, uint32_t vcpus);

}  // namespace skiff::gen2
