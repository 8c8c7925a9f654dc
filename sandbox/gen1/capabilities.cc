#include "sandbox/gen1/capabilities.h"

#include <linux/capability.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "sandbox/common/file_io.h"
#include "sandbox/common/status.h"

namespace skiff::gen1 {
namespace {

constexpr int kDefaultCaps[] = {
    CAP_CHOWN,       CAP_DAC_OVERRIDE, CAP_FOWNER,  CAP_FSETID,           CAP_KILL,
    CAP_SETGID,      CAP_SETUID,       CAP_SETPCAP, CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT,
    CAP_AUDIT_WRITE, CAP_SETFCAP,
};

absl::StatusOr<int> ReadLastCap() {
  absl::StatusOr<std::string> text = ReadFileToString("/proc/sys/kernel/cap_last_cap");
  int last = -1;
  if (text.ok() && absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &last) && last >= 0 &&
      last < 64) {
    return last;
  }
  // Older kernels lack the file: ask libcap, which probes the bounding set.
  last = static_cast<int>(cap_max_bits()) - 1;
  if (last < 0 || last >= 64) {
    return absl::InternalError(
        absl::StrCat("capabilities: cannot determine the kernel's last capability (", last, ")"));
  }
  return last;
}

int Capset(uint64_t permitted, uint64_t effective, uint64_t inheritable) {
  __user_cap_header_struct hdr{};
  hdr.version = _LINUX_CAPABILITY_VERSION_3;
  hdr.pid = 0;
  __user_cap_data_struct data[2] = {};
  data[0].permitted = static_cast<uint32_t>(permitted);
  data[1].permitted = static_cast<uint32_t>(permitted >> 32);
  data[0].effective = static_cast<uint32_t>(effective);
  data[1].effective = static_cast<uint32_t>(effective >> 32);
  data[0].inheritable = static_cast<uint32_t>(inheritable);
  data[1].inheritable = static_cast<uint32_t>(inheritable >> 32);
  return syscall(SYS_capset, &hdr, data) == 0 ? 0 : errno;
}

}  // namespace

absl::StatusOr<CapabilitySet> CapabilitySet::Default() {
  CapabilitySet s;
  SKIFF_ASSIGN_OR_RETURN(s.last_cap_, ReadLastCap());
  for (int c : kDefaultCaps) s.mask_ |= uint64_t{1} << c;
  return s;
}

absl::StatusOr<CapabilitySet> CapabilitySet::FromNames(const std::vector<std::string>& names) {
  CapabilitySet s;
  SKIFF_ASSIGN_OR_RETURN(s.last_cap_, ReadLastCap());
  for (const std::string& raw : names) {
    std::string name = absl::AsciiStrToLower(raw);
    if (!absl::StartsWith(name, "cap_")) name = "cap_" + name;
    cap_value_t v;
    if (name.find_first_of(", =+-") != std::string::npos || cap_from_name(name.c_str(), &v) != 0 ||
        v < 0 || v > s.last_cap_) {
      return absl::InvalidArgumentError(absl::StrCat("capability \"", raw, "\": unknown"));
    }
    s.mask_ |= uint64_t{1} << v;
  }
  return s;
}

std::vector<std::string> CapabilitySet::Names() const {
  std::vector<std::string> out;
  for (int c = 0; c < 64; ++c) {
    if (!Has(c)) continue;
    char* n = cap_to_name(static_cast<cap_value_t>(c));
    out.push_back(n ? n : absl::StrCat(c));
    cap_free(n);
  }
  return out;
}

absl::StatusOr<CapabilitySet> PrepareDefaultCapabilities() { return CapabilitySet::Default(); }

int DropBoundingSet(const CapabilitySet& caps) {
  if (caps.last_cap() < 0) return EINVAL;  // not prepared
  for (int c = 0; c <= caps.last_cap(); ++c) {
    if (caps.Has(c)) continue;
    if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0) return errno;
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) return errno;
  return 0;
}

int PrepareUidChange(const CapabilitySet& caps) {
  if (caps.last_cap() < 0) return EINVAL;
  return prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) == 0 ? 0 : errno;
}

int ApplyCapabilities(const CapabilitySet& caps) {
  if (caps.last_cap() < 0) return EINVAL;
  if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) return errno;
  if (int err = Capset(caps.mask(), caps.mask(), 0)) return err;
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) return errno;
  return 0;
}

}  // namespace skiff::gen1
