#include "sandbox/gen2/guest/initramfs.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "sandbox/common/file_io.h"
#include "sandbox/common/status.h"
#include "sandbox/common/unique_fd.h"
#include "sandbox/gen2/guest/cpio_newc.h"

namespace skiff::gen2::guest {

namespace {

// Larger than any skiff-init or kernel module.
constexpr size_t kMaxInputBytes = 64 << 20;

absl::Status WriteAtomically(const std::string& output, const std::string& data) {
  std::string tmp = output + ".tmp.XXXXXX";
  UniqueFd fd(mkostemp(tmp.data(), O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, "mkostemp(", tmp, ")");
  absl::Cleanup remove_tmp = [&tmp] { unlink(tmp.c_str()); };
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd.get(), data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "write(", tmp, ")");
    }
    done += static_cast<size_t>(n);
  }
  if (fchmod(fd.get(), 0644) != 0) return ErrnoStatus(errno, "fchmod(", tmp, ")");
  if (fsync(fd.get()) != 0) return ErrnoStatus(errno, "fsync(", tmp, ")");
  if (rename(tmp.c_str(), output.c_str()) != 0) {
    return ErrnoStatus(errno, "rename(", tmp, ", ", output, ")");
  }
  std::move(remove_tmp).Cancel();
  return absl::OkStatus();
}

bool IsModuleFileName(absl::string_view name) {
  if (name.size() < 4 || !absl::EndsWith(name, ".ko")) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-' || c == '.')) {
      return false;
    }
  }
  return name[0] != '.';
}

}  // namespace

absl::Status BuildInitramfs(const InitramfsSpec& spec, const std::string& output) {
  SKIFF_ASSIGN_OR_RETURN(std::string init, ReadFileToString(spec.init_path, kMaxInputBytes));
  CpioNewcWriter cpio;
  cpio.AddFile("init", 0755, init);
  cpio.AddDirectory("dev", 0755);
  cpio.AddCharDevice("dev/console", 0600, 5, 1);
  for (const char* dir : {"proc", "sys", "run", "skiff"}) cpio.AddDirectory(dir, 0755);
  if (!spec.modules_dir.empty()) {
    SKIFF_ASSIGN_OR_RETURN(std::string list, ReadFileToString(spec.modules_list));
    cpio.AddDirectory("modules", 0755);
    std::string normalized;
    for (absl::string_view name : absl::StrSplit(list, '\n', absl::SkipWhitespace())) {
      if (!IsModuleFileName(name)) {
        return absl::InvalidArgumentError(
            absl::StrCat("module list ", spec.modules_list, ": bad entry \"", name, "\""));
      }
      SKIFF_ASSIGN_OR_RETURN(
          std::string module,
          ReadFileToString(absl::StrCat(spec.modules_dir, "/", name), kMaxInputBytes));
      cpio.AddFile(absl::StrCat("modules/", name), 0644, module);
      absl::StrAppend(&normalized, name, "\n");
    }
    cpio.AddFile("modules/modules.list", 0644, normalized);
  }
  return WriteAtomically(output, cpio.Finish());
}

}  // namespace skiff::gen2::guest
