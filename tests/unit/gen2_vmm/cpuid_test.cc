// The per-vCPU CPUID filter over a synthetic supported table.

#include "sandbox/gen2/vmm/cpuid.h"

#include <gtest/gtest.h>

namespace skiff::gen2 {
namespace {

kvm_cpuid_entry2 Leaf(uint32_t function, uint32_t index, uint32_t a, uint32_t b, uint32_t c,
                      uint32_t d) {
  kvm_cpuid_entry2 e{};
  e.function = function;
  e.index = index;
  e.eax = a;
  e.ebx = b;
  e.ecx = c;
  e.edx = d;
  return e;
}

const kvm_cpuid_entry2* Find(const std::vector<kvm_cpuid_entry2>& v, uint32_t f, uint32_t i) {
  for (const auto& e : v) {
    if (e.function == f && e.index == i) return &e;
  }
  return nullptr;
}

TEST(CpuidTest, PerVcpuTopologyAndMasks) {
  const std::vector<kvm_cpuid_entry2> supported = {
      Leaf(0x1, 0, 0x806f8, 0xffff0800, 0x0000000b, 0x178bfbff),
      Leaf(0x4, 0, 0x121, 0, 0, 0),
      Leaf(0xa, 0, 0x7300402, 1, 2, 3),
      Leaf(0xb, 0, 1, 2, 0x100, 99),
      Leaf(0xb, 1, 4, 8, 0x201, 99),
      Leaf(0xb, 2, 0, 0, 2, 99),
      Leaf(0x40000001, 0, 0x1234, 0, 0, 0),
      Leaf(0x80000008, 0, 0x3030, 0, 0x700f, 0),
  };
  const auto v = CpuidForVcpu(supported, 3, 4);
  ASSERT_EQ(v.size(), supported.size());
  const auto* l1 = Find(v, 1, 0);
  EXPECT_EQ(l1->ebx >> 24, 3u);             // APIC id
  EXPECT_EQ((l1->ebx >> 16) & 0xff, 4u);    // logical processors
  EXPECT_EQ(l1->ebx & 0xffff, 0x0800u);     // the rest kept
  EXPECT_TRUE(l1->ecx & (1u << 31));        // hypervisor
  EXPECT_FALSE(l1->ecx & (1u << 3));        // no MONITOR
  EXPECT_TRUE(l1->edx & (1u << 28));        // HTT with > 1 vCPU
  EXPECT_EQ(Find(v, 4, 0)->eax >> 26, 3u);  // cores - 1
  const auto* pm = Find(v, 0xa, 0);
  EXPECT_EQ(pm->eax | pm->ebx | pm->ecx | pm->edx, 0u);
  EXPECT_EQ(Find(v, 0xb, 0)->edx, 3u);
  EXPECT_EQ(Find(v, 0xb, 0)->ebx, 1u);
  EXPECT_EQ(Find(v, 0xb, 1)->ebx, 4u);
  EXPECT_EQ(Find(v, 0xb, 1)->eax, 2u);  // 2 bits number 4 cores
  EXPECT_EQ(Find(v, 0xb, 1)->edx, 3u);
  EXPECT_EQ(Find(v, 0x40000001, 0)->eax, 0x1234u);  // paravirt leaves untouched
  EXPECT_EQ(Find(v, 0x80000008, 0)->ecx & 0xff, 3u);

  const auto one = CpuidForVcpu(supported, 0, 1);
  EXPECT_FALSE(Find(one, 1, 0)->edx & (1u << 28));
  EXPECT_EQ(Find(one, 1, 0)->ebx >> 24, 0u);
}

}  // namespace
}  // namespace skiff::gen2
