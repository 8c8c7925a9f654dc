// skiff-vmm: runs one microVM in this process until the guest ends it.
//
//   skiff-vmm --kernel K [--initramfs I] [--cmdline C] --memory-mib N --vcpus N
//             [--console FILE|-] [--quiet] [--disk PATH[,ro]] [--scratch-disk PATH]
//             [--tap NAME --mac MAC] [--control-socket PATH]
//
// --disk is the root image (virtio-blk, slot kSlotBlock; ",ro" attaches it read-only),
// --scratch-disk a writable second disk (slot kSlotScratch), --tap/--mac the guest's eth0
// (virtio-net), --control-socket a listening Unix stream socket the VMM connects to for the
// control channel (virtio-console). Each adds its virtio_mmio.device= to the command line.
//
// Exit status: 0 when the guest reset, powered off or triple-faulted (the VM ended the way
// a guest ends it), 1 with a one-line error on stderr naming what failed otherwise.

#include <fcntl.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "sandbox/common/status.h"
#include "sandbox/common/unique_fd.h"
#include "sandbox/gen2/vmm/layout.h"
#include "sandbox/gen2/vmm/virtio_slots.h"
#include "sandbox/gen2/vmm/vmm.h"

namespace skiff::gen2 {
namespace {

constexpr char kUsage[] =
    "usage: skiff-vmm --kernel PATH [--initramfs PATH] [--cmdline STRING] --memory-mib N\n"
    "                 --vcpus N [--console FILE|-] [--quiet] [--disk PATH[,ro]]\n"
    "                 [--scratch-disk PATH] [--tap NAME --mac MAC] [--control-socket PATH]\n";

struct Flags {
  VmmConfig config;
  std::string console = "-";
  std::string tap;
  std::string mac;
};

absl::Status CheckFile(const std::string& flag, const std::string& path) {
  struct stat st;
  if (path.empty()) return absl::InvalidArgumentError(flag + ": empty path");
  if (stat(path.c_str(), &st) != 0) return ErrnoStatus(errno, flag, " ", path);
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    return absl::InvalidArgumentError(flag + " " + path + ": not a file or block device");
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> ParseNumber(std::string flag, std::string value, uint64_t min,
                                     uint64_t max) {
  uint64_t n = 0;
  if (!absl::SimpleAtoi(value, &n) || n < min || n > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " ", value, ": want a whole number in ", min, "..", max));
  }
  return n;
}

absl::StatusOr<Flags> ParseFlags(int argc, char** argv) {
  Flags flags;
  bool have_memory = false, have_vcpus = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> absl::StatusOr<std::string> {
      if (i + 1 >= argc) return absl::InvalidArgumentError(absl::StrCat(arg, ": missing value"));
      return std::string(argv[++i]);
    };
    if (arg == "--quiet") {
      flags.config.quiet = true;
      continue;
    }
    SKIFF_ASSIGN_OR_RETURN(std::string v, value());
    if (arg == "--kernel") {
      flags.config.kernel_path = v;
    } else if (arg == "--initramfs") {
      flags.config.initramfs_path = v;
    } else if (arg == "--cmdline") {
      flags.config.cmdline = v;
    } else if (arg == "--memory-mib") {
      SKIFF_ASSIGN_OR_RETURN(uint64_t mib,
                             ParseNumber(arg, v, layout::kMinMemory >> 20, 64 * 1024));
      flags.config.memory_bytes = mib << 20;
      have_memory = true;
    } else if (arg == "--vcpus") {
      SKIFF_ASSIGN_OR_RETURN(uint64_t n, ParseNumber(arg, v, 1, layout::kMaxVcpus));
      flags.config.vcpus = static_cast<uint32_t>(n);
      have_vcpus = true;
    } else if (arg == "--console") {
      if (v.empty()) return absl::InvalidArgumentError("--console: empty path");
      flags.console = v;
    } else if (arg == "--disk") {
      std::string path = v;
      bool read_only = false;
      if (path.size() > 3 && path.compare(path.size() - 3, 3, ",ro") == 0) {
        path.resize(path.size() - 3);
        read_only = true;
      }
      SKIFF_RETURN_IF_ERROR(CheckFile("--disk", path));
      flags.config.virtio.push_back(DiskSlot(layout::kSlotBlock, path, read_only, "root"));
    } else if (arg == "--scratch-disk") {
      SKIFF_RETURN_IF_ERROR(CheckFile("--scratch-disk", v));
      flags.config.virtio.push_back(DiskSlot(layout::kSlotScratch, v, false, "scratch"));
    } else if (arg == "--tap") {
      if (v.empty() || v.size() > 15) {
        return absl::InvalidArgumentError("--tap " + v + ": want an interface name of 1..15 bytes");
      }
      flags.tap = v;
    } else if (arg == "--mac") {
      SKIFF_RETURN_IF_ERROR(ParseMac(v).status());
      flags.mac = v;
    } else if (arg == "--control-socket") {
      if (v.empty() || v.size() >= sizeof(sockaddr_un{}.sun_path)) {
        return absl::InvalidArgumentError("--control-socket " + v + ": empty or too long");
      }
      flags.config.virtio.push_back(ControlSlot(v));
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag ", arg));
    }
  }
  if (flags.config.kernel_path.empty()) return absl::InvalidArgumentError("--kernel is required");
  if (!have_memory) return absl::InvalidArgumentError("--memory-mib is required");
  if (!have_vcpus) return absl::InvalidArgumentError("--vcpus is required");
  if (flags.tap.empty() != flags.mac.empty()) {
    return absl::InvalidArgumentError("--tap and --mac go together");
  }
  if (!flags.tap.empty()) flags.config.virtio.push_back(NetSlot(flags.tap, *ParseMac(flags.mac)));
  for (size_t i = 0; i < flags.config.virtio.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (flags.config.virtio[i].slot == flags.config.virtio[j].slot) {
        return absl::InvalidArgumentError("a device flag was given twice");
      }
    }
  }
  return flags;
}

int Main(int argc, char** argv) {
  if (argc == 2 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h")) {
    fputs(kUsage, stdout);
    return 0;
  }
  // The VMM's own log goes to stderr: stdout may be the guest's console.
  spdlog::set_default_logger(spdlog::stderr_color_mt("skiff-vmm"));
  absl::StatusOr<Flags> flags = ParseFlags(argc, argv);
  if (!flags.ok()) {
    fprintf(stderr, "skiff-vmm: %s\n%s", std::string(flags.status().message()).c_str(), kUsage);
    return 1;
  }
  UniqueFd console;
  if (!flags->config.quiet) {
    if (flags->console == "-") {
      flags->config.console_fd = STDOUT_FILENO;
    } else {
      console.Reset(open(flags->console.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
      if (!console) {
        const absl::Status s = ErrnoStatus(errno, "open(--console ", flags->console, ")");
        fprintf(stderr, "skiff-vmm: %s\n", std::string(s.message()).c_str());
        return 1;
      }
      flags->config.console_fd = console.get();
    }
  }
  absl::StatusOr<std::unique_ptr<Vmm>> vmm = Vmm::Create(std::move(flags->config));
  if (!vmm.ok()) {
    fprintf(stderr, "skiff-vmm: %s\n", std::string(vmm.status().message()).c_str());
    return 1;
  }
  const VmExit exit = (*vmm)->Run();
  if (!exit.guest_ended()) {
    fprintf(stderr, "skiff-vmm: VM ended (%s): %s\n", VmEndName(exit.end),
            std::string(exit.status.message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace skiff::gen2

int main(int argc, char** argv) { return skiff::gen2::Main(argc, argv); }
