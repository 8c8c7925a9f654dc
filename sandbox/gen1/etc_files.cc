#include "sandbox/gen1/etc_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "sandbox/common/unique_fd.h"
#include "sandbox/gen1/child_steps.h"

namespace skiff::gen1 {

std::string HostsFileContent(const std::string& hostname, const std::string& instance_ip) {
  std::string out =
      "127.0.0.1\tlocalhost\n"
      "::1\tlocalhost ip6-localhost ip6-loopback\n";
  if (!instance_ip.empty()) absl::StrAppend(&out, instance_ip, "\t", hostname, "\n");
  return out;
}

std::string HostnameFileContent(const std::string& hostname) { return hostname + "\n"; }

std::string ResolvConfContent(const std::string& host_resolv_conf) {
  std::string out;
  for (absl::string_view line : absl::StrSplit(host_resolv_conf, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    std::vector<absl::string_view> words =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (words.size() < 2) continue;
    if (words[0] == "nameserver") {
      if (absl::StartsWith(words[1], "127.") || words[1] == "::1") continue;
    } else if (words[0] != "search" && words[0] != "domain" && words[0] != "options") {
      continue;
    }
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

namespace {

int WriteWhole(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return 0;
}

}  // namespace

// Runs after pivot_root: every path resolves inside the instance's root. The image's
// file (or a symlink planted in its place) is unlinked first, never followed.
ChildError WriteEtcFiles(const ChildContext& ctx) {
  if (int err = MakeMountPoint("/etc", 0755); err != 0) {
    return ChildFail(ChildStep::kWriteEtcFile, err, 0);
  }
  for (int i = 0; i < static_cast<int>(kEtcFileCount); ++i) {
    const EtcFile& file = ctx.etc_files[i];
    if (unlink(file.path) != 0 && errno != ENOENT) {
      return ChildFail(ChildStep::kWriteEtcFile, errno, i);
    }
    UniqueFd fd(open(file.path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!fd) return ChildFail(ChildStep::kWriteEtcFile, errno, i);
    if (int err = WriteWhole(fd.get(), file.content, file.size); err != 0) {
      return ChildFail(ChildStep::kWriteEtcFile, err, i);
    }
  }
  return ChildOk();
}

}  // namespace skiff::gen1
