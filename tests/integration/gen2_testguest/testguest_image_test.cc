// The test guest's two packagings, read as a loader reads them: the bzImage's boot
// protocol header and the ELF's program headers and PVH note. Hermetic (no VM).

#include <elf.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "sandbox/common/file_io.h"
#include "sandbox/gen2/testguest/testguest_paths.h"
#include "sandbox/gen2/vmm/layout.h"
#include "tests/integration/gen2_testguest/testguest_output.h"
#include "tests/support/status_matchers.h"

namespace skiff::gen2::testguest {
namespace {

namespace layout = ::skiff::gen2::layout;

template <typename T>
T At(const std::string& bytes, size_t offset) {
  T v{};
  if (offset + sizeof(T) <= bytes.size()) std::memcpy(&v, bytes.data() + offset, sizeof(T));
  return v;
}

std::string ReadImage(const char* path) {
  absl::StatusOr<std::string> bytes = ReadFileToString(path, 16 << 20);
  EXPECT_THAT(bytes, skiff::testing::IsOk());
  return bytes.ok() ? *bytes : "";
}

TEST(TestGuestImage, BzImageCarriesTheBootProtocolHeader) {
  std::string img = ReadImage(kBzImagePath);
  ASSERT_GT(img.size(), 0x1000u);
  EXPECT_EQ(img.substr(0x202, 4), "HdrS");
  EXPECT_EQ(At<uint16_t>(img, 0x206), 0x020f);  // protocol 2.15
  EXPECT_EQ(At<uint16_t>(img, 0x1fe), 0xaa55);  // boot_flag
  const uint8_t setup_sects = At<uint8_t>(img, 0x1f1);
  const size_t setup_bytes = (setup_sects + 1) * 512u;
  ASSERT_LT(setup_bytes, img.size());
  // syssize counts the protected-mode part in 16-byte paragraphs.
  EXPECT_EQ(At<uint32_t>(img, 0x1f4), (img.size() - setup_bytes + 15) / 16);
  EXPECT_EQ(At<uint8_t>(img, 0x211) & 0x01, 0x01);                   // loadflags: LOADED_HIGH
  EXPECT_EQ(At<uint32_t>(img, 0x214), layout::kKernelLoadAddr);      // code32_start
  EXPECT_NE(At<uint32_t>(img, 0x230), 0u);                           // kernel_alignment
  EXPECT_EQ(At<uint8_t>(img, 0x234), 0);                             // relocatable_kernel
  EXPECT_EQ(At<uint16_t>(img, 0x236) & 0x0001, 0x0001);              // XLF_KERNEL_64
  EXPECT_EQ(At<uint32_t>(img, 0x238), layout::kCmdlineMaxSize - 1);  // cmdline_size
  EXPECT_EQ(At<uint64_t>(img, 0x258), layout::kKernelLoadAddr);      // pref_address
  EXPECT_GE(At<uint32_t>(img, 0x260), img.size() - setup_bytes);     // init_size
}

TEST(TestGuestImage, ElfHasOneLoadAtOneMibAndAPvhNote) {
  std::string elf = ReadImage(kElfPath);
  ASSERT_GE(elf.size(), sizeof(Elf64_Ehdr));
  Elf64_Ehdr eh = At<Elf64_Ehdr>(elf, 0);
  ASSERT_EQ(std::memcmp(eh.e_ident, ELFMAG, SELFMAG), 0);
  EXPECT_EQ(eh.e_ident[EI_CLASS], ELFCLASS64);
  EXPECT_EQ(eh.e_machine, EM_X86_64);
  EXPECT_EQ(eh.e_entry, layout::kKernelLoadAddr + 0x200);  // startup_64
  int loads = 0;
  uint64_t pvh_entry = 0;
  Elf64_Phdr load{};
  for (int i = 0; i < eh.e_phnum; i++) {
    Elf64_Phdr ph = At<Elf64_Phdr>(elf, eh.e_phoff + i * sizeof(Elf64_Phdr));
    if (ph.p_type == PT_LOAD) {
      loads++;
      load = ph;
    } else if (ph.p_type == PT_NOTE) {
      for (uint64_t off = ph.p_offset; off + sizeof(Elf64_Nhdr) <= ph.p_offset + ph.p_filesz;) {
        Elf64_Nhdr nh = At<Elf64_Nhdr>(elf, off);
        uint64_t name = off + sizeof(nh);
        uint64_t desc = name + ((nh.n_namesz + 3) & ~3u);
        if (nh.n_type == 18 /* XEN_ELFNOTE_PHYS32_ENTRY */ && elf.compare(name, 3, "Xen") == 0 &&
            nh.n_descsz >= 4) {
          pvh_entry = At<uint32_t>(elf, desc);
        }
        off = desc + ((nh.n_descsz + 3) & ~3u);
      }
    }
  }
  ASSERT_EQ(loads, 1);
  EXPECT_EQ(load.p_paddr, layout::kKernelLoadAddr);
  EXPECT_GE(load.p_memsz, load.p_filesz);
  EXPECT_GT(pvh_entry, load.p_paddr);
  EXPECT_LT(pvh_entry, load.p_paddr + load.p_filesz);
}

TEST(TestGuestImage, BothPackagingsCarryTheSameCode) {
  std::string img = ReadImage(kBzImagePath);
  std::string elf = ReadImage(kElfPath);
  ASSERT_GT(img.size(), 0x1f1u);
  const size_t setup_bytes = (At<uint8_t>(img, 0x1f1) + 1) * 512u;
  Elf64_Ehdr eh = At<Elf64_Ehdr>(elf, 0);
  for (int i = 0; i < eh.e_phnum; i++) {
    Elf64_Phdr ph = At<Elf64_Phdr>(elf, eh.e_phoff + i * sizeof(Elf64_Phdr));
    if (ph.p_type != PT_LOAD) continue;
    ASSERT_EQ(img.size() - setup_bytes, ph.p_filesz);
    EXPECT_TRUE(img.compare(setup_bytes, ph.p_filesz, elf, ph.p_offset, ph.p_filesz) == 0);
  }
}

TEST(TestGuestOutput, ParsesTheGuestsLines) {
  GuestReport r = ParseGuestOutput(
      "noise from a VMM\n"
      "tg: skiff-testguest entry=linux64\r\n"
      "tg: cmdline=testguest.mode=smp,blk virtio_mmio.device=4K@0xd0000000:5\n"
      "tg: e820 addr=0x0 size=0x9fc00 type=1\n"
      "tg: e820 addr=0x100000 size=0x3f00000 type=1\n"
      "tg: initrd addr=0x3fff000 size=0xc\n"
      "tg: cpu 0 bsp\n"
      "[vcpu1] tg: cpu 1 up\n"
      "tg: blk root 0xd0000000 capacity=128 ro=1 read=8 fnv1a=0badf00d\n"
      "tg: blk scratch 0xd0003000 capacity=2048 wrote=8 readback=ok fnv1a=9163e5c5\n"
      "tg: net rx len=60\n"
      "tg: net rx frame=ffff0a\n"
      "tg: control rx=hello there\n"
      "tg: garbage loop device-broken status=0x4f\n"
      "tg: garbage device-broken\n"
      "tg: error something failed\n"
      "tg: done\n");
  EXPECT_EQ(r.entry, "linux64");
  EXPECT_EQ(r.cmdline, "testguest.mode=smp,blk virtio_mmio.device=4K@0xd0000000:5");
  ASSERT_EQ(r.e820.size(), 2u);
  EXPECT_EQ(r.e820[1].addr, 0x100000u);
  EXPECT_EQ(r.e820[1].size, 0x3f00000u);
  EXPECT_EQ(r.initrd_size, 0xcu);
  EXPECT_EQ(r.bsp_apic_id, 0u);
  EXPECT_EQ(r.aps_up, std::vector<uint32_t>{1});
  EXPECT_EQ(r.root_fnv1a, 0x0badf00du);
  EXPECT_TRUE(r.root_read_only);
  EXPECT_EQ(r.scratch_readback_ok, true);
  EXPECT_EQ(r.net_rx_frame, std::string("\xff\xff\x0a"));
  EXPECT_EQ(r.control_rx, "hello there");
  ASSERT_EQ(r.garbage_broken.size(), 1u);
  EXPECT_EQ(r.garbage_broken[0].status, 0x4fu);
  EXPECT_TRUE(r.garbage_device_broken);
  EXPECT_EQ(r.errors, std::vector<std::string>{"something failed"});
  EXPECT_TRUE(r.done);
}

TEST(TestGuestOutput, HostExpectationsMatchTheGuestsFormulas) {
  EXPECT_EQ(Fnv1a32(""), 2166136261u);   // the FNV-1a offset basis
  EXPECT_EQ(Fnv1a32("a"), 0xe40c292cu);  // published FNV-1a 32 test vector
  std::string p = ScratchPattern(1024);
  EXPECT_EQ(static_cast<uint8_t>(p[0]), 0x5a);
  EXPECT_EQ(static_cast<uint8_t>(p[1]), 7 ^ 0x5a);
  EXPECT_EQ(static_cast<uint8_t>(p[512]), ((7 * 512 + 1) & 0xff) ^ 0x5a);
}

}  // namespace
}  // namespace skiff::gen2::testguest
