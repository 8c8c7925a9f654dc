// scripts/guest-kernel.sh end to end (label slow: it fetches from the Debian archive and,
// the first time, builds a kernel; both are cached under ${SKIFF_CACHE:-/var/cache/skiff}).
//   Debian:  the versioned linux-image package → a bzImage with a valid boot header and
//            the release in it; the modules skiff-init needs, dependencies first; an
//            initramfs built from them that cpio unpacks with /init and every module.
//   minimal: tinyconfig + sandbox/gen2/guest/kernel/microvm.config → a bzImage, and a
//            .config holding every option of the fragment.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "sandbox/gen2/guest/initramfs.h"
#include "sandbox/gen2/vmm/boot/bzimage.h"
#include "sandbox/gen2/vmm/boot/setup_header.h"
#include "sandbox/gen2/vmm/guest_memory.h"
#include "sandbox/gen2/vmm/layout.h"
#include "sandbox/gen2/vmm/vmm.h"
#include "tests/support/shell.h"

namespace skiff::gen2::guest {
namespace {

using ::skiff::testing::Shell;
using ::skiff::testing::SourceDir;

using ::testing::HasSubstr;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The script's key=value lines.
std::map<std::string, std::string> RunScript(const std::string& args) {
  std::string out = Shell(SourceDir() + "/scripts/guest-kernel.sh " + args);
  std::map<std::string, std::string> kv;
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    size_t eq = line.find('=');
    EXPECT_NE(eq, std::string::npos) << "not key=value: " << line;
    if (eq != std::string::npos) kv[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return kv;
}

uint16_t Le16(const std::string& b, size_t off) {
  return static_cast<uint16_t>(static_cast<uint8_t>(b[off]) | static_cast<uint8_t>(b[off + 1])
                                                                  << 8);
}

// The Linux/x86 boot protocol header (Documentation/arch/x86/boot.rst) of a bzImage.
void ExpectBzImage(const std::string& path, const std::string& release) {
  std::string k = ReadAll(path);
  ASSERT_GT(k.size(), 1u << 20) << path;
  EXPECT_EQ(Le16(k, 0x1fe), 0xaa55);                 // boot_flag
  EXPECT_EQ(k.substr(0x202, 4), "HdrS");             // header magic
  EXPECT_GE(Le16(k, 0x206), 0x020c);                 // protocol >= 2.12 (64-bit entry)
  EXPECT_NE(static_cast<uint8_t>(k[0x211]) & 1, 0);  // loadflags: LOADED_HIGH
  uint16_t xloadflags = Le16(k, 0x236);
  EXPECT_NE(xloadflags & 1, 0) << "XLF_KERNEL_64";
  size_t version_at = size_t{Le16(k, 0x20e)} + 0x200;  // kernel_version
  ASSERT_LT(version_at, k.size());
  std::string version(k.c_str() + version_at);
  EXPECT_EQ(version.substr(0, release.size() + 1), release + " ") << version;
}

TEST(GuestKernelTest, DebianKernelWithModulesAndAnInitramfs) {
  auto out = RunScript("");
  ASSERT_TRUE(out.count("kernel") && out.count("version") && out.count("modules_dir") &&
              out.count("modules_list"));
  EXPECT_THAT(out["version"], ::testing::MatchesRegex("6\\.1\\.0-[0-9]+-amd64"));
  ExpectBzImage(out["kernel"], out["version"]);

  // Dependencies first, every wanted module present, each a module of this kernel.
  std::vector<std::string> modules;
  std::istringstream list(ReadAll(out["modules_list"]));
  for (std::string m; std::getline(list, m);) modules.push_back(m);
  auto index = [&](const std::string& m) {
    return std::find(modules.begin(), modules.end(), m) - modules.begin();
  };
  for (const char* m : {"virtio_mmio.ko", "virtio_blk.ko", "virtio_net.ko", "virtio_console.ko",
                        "erofs.ko", "overlay.ko", "crc32c_generic.ko"}) {
    EXPECT_LT(index(m), static_cast<long>(modules.size())) << m << " missing";
  }
  EXPECT_LT(index("virtio_ring.ko"), index("virtio.ko"));
  EXPECT_LT(index("virtio.ko"), index("virtio_mmio.ko"));
  EXPECT_LT(index("net_failover.ko"), index("virtio_net.ko"));
  EXPECT_LT(index("crc32c_generic.ko"), index("libcrc32c.ko"));
  EXPECT_LT(index("libcrc32c.ko"), index("erofs.ko"));
  for (const std::string& m : modules) {
    std::string data = ReadAll(out["modules_dir"] + "/" + m);
    EXPECT_EQ(data.substr(0, 4),
              "\x7f"
              "ELF")
        << m;
    EXPECT_THAT(data, HasSubstr("vermagic=" + out["version"] + " ")) << m;
  }

  char tmpl[] = "/tmp/skiff-guest-kernel-test.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  ASSERT_TRUE(
      BuildInitramfs({SKIFF_INIT_PATH, out["modules_dir"], out["modules_list"]}, dir + "/i.cpio")
          .ok());
  Shell("cd " + dir + " && mkdir x && cd x && cpio -idm --quiet < ../i.cpio");
  EXPECT_EQ(ReadAll(dir + "/x/init"), ReadAll(SKIFF_INIT_PATH));
  EXPECT_EQ(ReadAll(dir + "/x/modules/modules.list"), ReadAll(out["modules_list"]));
  for (const std::string& m : modules) {
    EXPECT_EQ(ReadAll(dir + "/x/modules/" + m), ReadAll(out["modules_dir"] + "/" + m)) << m;
  }
  Shell("rm -rf " + dir);
}

TEST(GuestKernelTest, MinimalKernelHasEveryOptionOfTheFragment) {
  auto out = RunScript("--minimal");
  ASSERT_TRUE(out.count("kernel") && out.count("version") && out.count("config"));
  EXPECT_THAT(out["version"], ::testing::MatchesRegex("6\\.1\\.[0-9]+"));
  ExpectBzImage(out["kernel"], out["version"]);
  const std::string config = ReadAll(out["config"]);
  const std::string fragment = ReadAll(SourceDir() + "/sandbox/gen2/guest/kernel/microvm.config");
  std::istringstream lines(fragment);
  int checked = 0;
  const std::regex set("^(CONFIG_[A-Z0-9_]+)=(.*)$"), unset("^# (CONFIG_[A-Z0-9_]+) is not set$");
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    if (std::regex_match(line, m, set)) {
      EXPECT_THAT(config, HasSubstr("\n" + line + "\n"));
      ++checked;
    } else if (std::regex_match(line, m, unset)) {
      EXPECT_THAT(config, ::testing::Not(HasSubstr("\n" + m[1].str() + "=")));
      ++checked;
    }
  }
  EXPECT_GT(checked, 60);
}

// The boot-free half of the Linux path through our VMM: Debian's kernel and the minimal one
// go through skiff-vmm's bzImage loader, and a Vmm is built around the minimal one with the
// initramfs (not run — Linux cannot boot on this machine's PVM /dev/kvm): the zero page it
// wrote carries the kernel's setup header, our command line and the initramfs.
TEST(GuestKernelTest, BothKernelsLoadThroughTheVmmAndTheZeroPageDescribesTheBoot) {
  for (const char* args : {"", "--minimal"}) {
    auto out = RunScript(args);
    const std::string file = ReadAll(out["kernel"]);
    std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(file.data()), file.size());
    ASSERT_TRUE(boot::LooksLikeBzImage(bytes)) << out["kernel"];
    absl::StatusOr<boot::BzImage> image = boot::ParseBzImage(bytes, 256ull << 20);
    ASSERT_TRUE(image.ok()) << out["kernel"] << ": " << image.status();
    EXPECT_EQ(image->entry, image->load_addr + 0x200) << "the 64-bit entry, startup_64";
    absl::StatusOr<GuestMemory> memory = GuestMemory::Create(256ull << 20);
    ASSERT_TRUE(memory.ok()) << memory.status();
    ASSERT_TRUE(boot::LoadBzImage(*image, *memory).ok());
    std::string loaded(image->protected_mode.size(), '\0');
    ASSERT_TRUE(memory->Read(image->load_addr, loaded.data(), loaded.size()).ok());
    EXPECT_EQ(std::memcmp(loaded.data(), image->protected_mode.data(), loaded.size()), 0)
        << out["kernel"] << ": the protected-mode part is not what was loaded";
  }

  auto out = RunScript("--minimal");
  char tmpl[] = "/tmp/skiff-guest-kernel-test.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  ASSERT_TRUE(BuildInitramfs({SKIFF_INIT_PATH, "", ""}, dir + "/i.cpio").ok());
  VmmConfig config;
  config.kernel_path = out["kernel"];
  config.initramfs_path = dir + "/i.cpio";
  config.cmdline = "console=ttyS0 reboot=k panic=-1 quiet";
  config.memory_bytes = 256ull << 20;
  config.vcpus = 2;
  config.seccomp = false;
  absl::StatusOr<std::unique_ptr<Vmm>> vmm = Vmm::Create(config);
  ASSERT_TRUE(vmm.ok()) << vmm.status();
  absl::StatusOr<boot::SetupHeader> hdr =
      (*vmm)->memory().ReadObj<boot::SetupHeader>(layout::kZeroPageAddr + boot::kSetupHeaderOffset);
  ASSERT_TRUE(hdr.ok());
  EXPECT_EQ(hdr->header, 0x53726448u) << "HdrS";
  EXPECT_EQ(hdr->type_of_loader, 0xff);
  std::string cmdline(64, '\0');
  ASSERT_TRUE((*vmm)->memory().Read(hdr->cmd_line_ptr, cmdline.data(), cmdline.size()).ok());
  EXPECT_THAT(cmdline, ::testing::StartsWith("console=ttyS0 reboot=k panic=-1"));
  const std::string initramfs = ReadAll(dir + "/i.cpio");
  EXPECT_EQ(hdr->ramdisk_size, initramfs.size());
  std::string placed(initramfs.size(), '\0');
  ASSERT_TRUE((*vmm)->memory().Read(hdr->ramdisk_image, placed.data(), placed.size()).ok());
  EXPECT_TRUE(placed == initramfs) << "the initramfs is not where the zero page says";
  vmm->reset();
  Shell("rm -rf " + dir);
}

}  // namespace
}  // namespace skiff::gen2::guest
