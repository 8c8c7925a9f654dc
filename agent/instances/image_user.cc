#include "agent/instances/image_user.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <charconv>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "sandbox/common/status.h"
#include "sandbox/common/unique_fd.h"

namespace skiff::agent {
namespace {

constexpr size_t kMaxFileBytes = 1 << 20;

std::optional<uint32_t> ParseId(const std::string& s) {
  if (s.empty() || s.size() > 10) return std::nullopt;
  uint32_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

struct PasswdEntry {
  std::string name;
  uid_t uid;
  gid_t gid;
};
struct GroupEntry {
  std::string name;
  gid_t gid;
  std::vector<std::string> members;
};

std::vector<PasswdEntry> ParsePasswd(const std::string& text) {
  std::vector<PasswdEntry> out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> f = absl::StrSplit(line, ':');
    if (f.size() < 4) continue;
    auto uid = ParseId(f[2]);
    auto gid = ParseId(f[3]);
    if (!uid || !gid) continue;
    out.push_back({f[0], *uid, *gid});
  }
  return out;
}

std::vector<GroupEntry> ParseGroup(const std::string& text) {
  std::vector<GroupEntry> out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> f = absl::StrSplit(line, ':');
    if (f.size() < 3) continue;
    auto gid = ParseId(f[2]);
    if (!gid) continue;
    GroupEntry g{f[0], *gid, {}};
    if (f.size() >= 4 && !f[3].empty()) g.members = absl::StrSplit(f[3], ',');
    out.push_back(std::move(g));
  }
  return out;
}

}  // namespace

absl::StatusOr<std::string> ReadLayeredFile(const std::vector<std::string>& layer_dirs,
                                            const std::string& rel_path) {
  for (const std::string& dir : layer_dirs) {
    UniqueFd root(open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!root) return ErrnoStatus(errno, "open(", dir, ")");
    // O_PATH first: a whiteout (0:0 char device) must be seen, not opened.
    struct open_how how = {};
    how.flags = O_PATH | O_CLOEXEC | O_NOFOLLOW;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    int fd =
        static_cast<int>(syscall(SYS_openat2, root.get(), rel_path.c_str(), &how, sizeof(how)));
    if (fd < 0) {
      if (errno == ENOENT) {
        // Parent dir may be opaque in this layer: then lower layers are hidden too.
        const std::string parent = rel_path.substr(0, rel_path.rfind('/'));
        char value[2];
        const std::string parent_path = absl::StrCat(dir, "/", parent);
        if (parent != rel_path &&
            lgetxattr(parent_path.c_str(), "trusted.overlay.opaque", value, sizeof(value)) == 1 &&
            value[0] == 'y') {
          return absl::NotFoundError(absl::StrCat(rel_path, ": hidden by an opaque dir in ", dir));
        }
        continue;
      }
      return ErrnoStatus(errno, "open(", dir, "/", rel_path, ")");
    }
    UniqueFd path_fd(fd);
    struct stat st;
    if (fstat(path_fd.get(), &st) != 0) {
      return ErrnoStatus(errno, "fstat(", dir, "/", rel_path, ")");
    }
    if (S_ISCHR(st.st_mode) && st.st_rdev == 0) {
      return absl::NotFoundError(absl::StrCat(rel_path, ": whited out in ", dir));
    }
    if (!S_ISREG(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat(dir, "/", rel_path, ": not a regular file"));
    }
    if (static_cast<size_t>(st.st_size) > kMaxFileBytes) {
      return absl::FailedPreconditionError(
          absl::StrCat(dir, "/", rel_path, ": larger than ", kMaxFileBytes, " bytes"));
    }
    // Reopen the very inode found above for reading.
    const std::string proc_path = absl::StrCat("/proc/self/fd/", path_fd.get());
    UniqueFd file(open(proc_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!file) return ErrnoStatus(errno, "open(", dir, "/", rel_path, ")");
    std::string data(static_cast<size_t>(st.st_size), '\0');
    size_t got = 0;
    while (got < data.size()) {
      ssize_t n = read(file.get(), data.data() + got, data.size() - got);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoStatus(errno, "read(", dir, "/", rel_path, ")");
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    data.resize(got);
    return data;
  }
  return absl::NotFoundError(absl::StrCat(rel_path, ": in no layer"));
}

absl::StatusOr<ResolvedUser> ResolveImageUser(const std::string& user,
                                              const std::vector<std::string>& layer_dirs,
                                              const std::string& field) {
  const size_t colon = user.find(':');
  const bool has_group = colon != std::string::npos;
  const std::string group_part = has_group ? user.substr(colon + 1) : std::string();
  // "" and ":g" mean root, like Docker.
  const std::string user_part =
      colon == 0 || user.empty() ? std::string(1, '0') : user.substr(0, colon);

  // Files are only needed for names, the default gid and supplementary groups.
  std::vector<PasswdEntry> passwd;
  if (auto text = ReadLayeredFile(layer_dirs, "etc/passwd"); text.ok()) {
    passwd = ParsePasswd(*text);
  } else if (!absl::IsNotFound(text.status())) {
    return Annotate(text.status(), field);
  }
  std::vector<GroupEntry> groups;
  if (auto text = ReadLayeredFile(layer_dirs, "etc/group"); text.ok()) {
    groups = ParseGroup(*text);
  } else if (!absl::IsNotFound(text.status())) {
    return Annotate(text.status(), field);
  }

  ResolvedUser out;
  std::string user_name;
  if (auto uid = ParseId(user_part)) {
    out.uid = *uid;
    out.gid = 0;
    for (const auto& p : passwd) {
      if (p.uid == *uid) {
        out.gid = p.gid;
        user_name = p.name;
        break;
      }
    }
  } else {
    const PasswdEntry* found = nullptr;
    for (const auto& p : passwd) {
      if (p.name == user_part) {
        found = &p;
        break;
      }
    }
    if (found == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": user \"", user_part, "\" not found in the image's /etc/passwd"));
    }
    out.uid = found->uid;
    out.gid = found->gid;
    user_name = found->name;
  }

  if (has_group) {
    if (group_part.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": empty group in \"", user, "\""));
    }
    if (auto gid = ParseId(group_part)) {
      out.gid = *gid;
    } else {
      const GroupEntry* found = nullptr;
      for (const auto& g : groups) {
        if (g.name == group_part) {
          found = &g;
          break;
        }
      }
      if (found == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(field, ": group \"", group_part,
                                                       "\" not found in the image's /etc/group"));
      }
      out.gid = found->gid;
    }
    // An explicit group replaces supplementary groups, as in Docker.
    return out;
  }

  if (!user_name.empty()) {
    for (const auto& g : groups) {
      if (g.gid == out.gid) continue;
      for (const auto& m : g.members) {
        if (m == user_name) {
          out.additional_gids.push_back(g.gid);
          break;
        }
      }
    }
  }
  return out;
}

}  // namespace skiff::agent
