#include "images/layer_unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "images/digest.h"
#include "images/fs_ops.h"
#include "sandbox/common/status.h"
#include "sandbox/common/unique_fd.h"

namespace skiff::images {
namespace {

constexpr char kWhiteoutPrefix[] = ".wh.";
constexpr char kOpaqueMarker[] = ".wh..wh..opq";
constexpr char kMetaPrefix[] = ".wh..wh.";
constexpr char kOpaqueXattr[] = "trusted.overlay.opaque";

struct ArchiveFree {
  void operator()(struct archive* a) const { archive_read_free(a); }
};

bool XattrAllowed(const std::string& name) {
  return absl::StartsWith(name, "user.") || name == "security.capability";
}

class Unpacker {
 public:
  Unpacker(std::string digest, UniqueFd root, std::string dest, const UnpackLimits& limits)
      : digest_(std::move(digest)),
        root_(std::move(root)),
        dest_(std::move(dest)),
        limits_(limits) {}

  absl::Status Run(const std::string& blob_path) {
    UniqueFd blob(open(blob_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!blob) return ErrnoStatus(errno, "layer ", digest_, ": open(", blob_path, ")");
    std::unique_ptr<struct archive, ArchiveFree> a(archive_read_new());
    archive_read_support_filter_gzip(a.get());
    archive_read_support_filter_zstd(a.get());
    archive_read_support_format_tar(a.get());
    archive_read_support_format_empty(a.get());
    if (archive_read_open_fd(a.get(), blob.get(), 1 << 20) != ARCHIVE_OK) {
      return absl::InvalidArgumentError(
          absl::StrCat("layer ", digest_, ": ", archive_error_string(a.get())));
    }
    for (;;) {
      struct archive_entry* e = nullptr;
      int r = archive_read_next_header(a.get(), &e);
      if (r == ARCHIVE_EOF) break;
      if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
        return absl::DataLossError(
            absl::StrCat("layer ", digest_, ": reading tar: ", archive_error_string(a.get())));
      }
      const char* raw = archive_entry_pathname(e);
      std::string path = raw ? raw : "";
      if (++entries_ > limits_.max_entries) {
        return absl::ResourceExhaustedError(
            absl::StrCat("layer ", digest_, ": more than ", limits_.max_entries, " entries"));
      }
      if (archive_entry_filetype(e) == AE_IFREG && archive_entry_size(e) > 0) {
        bytes_ += static_cast<uint64_t>(archive_entry_size(e));
        if (bytes_ > limits_.max_bytes) {
          return absl::ResourceExhaustedError(absl::StrCat("layer ", digest_, ": entry \"", path,
                                                           "\": unpacked size exceeds ",
                                                           limits_.max_bytes, " bytes"));
        }
      }
      SKIFF_RETURN_IF_ERROR(Entry(a.get(), e, path));
    }
    return absl::OkStatus();
  }

 private:
  absl::Status Refuse(const std::string& path, const std::string& why) const {
    return absl::InvalidArgumentError(
        absl::StrCat("layer ", digest_, ": entry \"", path, "\": ", why));
  }
  absl::Status Errno(int err, const std::string& path, const char* op) const {
    return ErrnoStatus(err, "layer ", digest_, ": entry \"", path, "\": ", op);
  }

  // Splits an entry path into components; refuses absolute paths and "..".
  absl::StatusOr<std::vector<std::string>> Split(const std::string& path,
                                                 const std::string& entry) const {
    if (path.empty()) return Refuse(entry, "empty path");
    if (path.front() == '/') return Refuse(entry, absl::StrCat("absolute path \"", path, "\""));
    if (path.find('\0') != std::string::npos) return Refuse(entry, "NUL in path");
    std::vector<std::string> out;
    for (absl::string_view c : absl::StrSplit(path, '/')) {
      if (c.empty() || c == ".") continue;
      if (c == "..") return Refuse(entry, absl::StrCat("\"..\" component in \"", path, "\""));
      out.emplace_back(c);
    }
    return out;
  }

  // Opens the directory made of comps[0..n), creating missing ones when `create`.
  // Never follows a symlink: a symlink or non-directory on the way is refused.
  absl::StatusOr<UniqueFd> OpenDir(const std::vector<std::string>& comps, size_t n, bool create,
                                   const std::string& entry) {
    UniqueFd cur(fcntl(root_.get(), F_DUPFD_CLOEXEC, 0));
    if (!cur) return Errno(errno, entry, "dup");
    for (size_t i = 0; i < n; ++i) {
      const char* c = comps[i].c_str();
      UniqueFd next(openat(cur.get(), c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!next && errno == ENOENT && create) {
        if (mkdirat(cur.get(), c, 0755) != 0 && errno != EEXIST) {
          return Errno(errno, entry, "mkdir(parent)");
        }
        next.Reset(openat(cur.get(), c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      }
      if (!next) {
        if (errno == ELOOP || errno == ENOTDIR) {
          return Refuse(entry,
                        absl::StrCat("parent \"", comps[i], "\" is a symlink or not a directory"));
        }
        return Errno(errno, entry, "open(parent)");
      }
      cur = std::move(next);
    }
    return cur;
  }

  // Makes room for a new entry `name` in `dir`. Returns true if an existing directory
  // should be kept (a directory entry over a directory).
  absl::StatusOr<bool> MakeRoom(int dir, const std::string& name, bool new_is_dir,
                                const std::string& entry) {
    struct stat st;
    if (fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) return false;
      return Errno(errno, entry, "stat");
    }
    if (S_ISDIR(st.st_mode) && new_is_dir) return true;
    SKIFF_RETURN_IF_ERROR(RemoveTreeAt(dir, name, absl::StrCat(dest_, "/", entry)));
    return false;
  }

  absl::Status SetXattrs(struct archive_entry* e, int fd, const std::string& entry) {
    archive_entry_xattr_reset(e);
    const char* name = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
      if (name == nullptr || !XattrAllowed(name)) continue;
      // "Where possible": a filesystem without xattrs or a value the kernel rejects
      // (e.g. a malformed security.capability) drops that attribute only.
      if (fsetxattr(fd, name, value, size, 0) != 0 && errno != ENOTSUP && errno != EINVAL) {
        return Errno(errno, entry, "fsetxattr");
      }
    }
    return absl::OkStatus();
  }

  absl::Status Whiteout(int dir, const std::string& name, const std::string& entry) {
    if (name == kOpaqueMarker) {
      if (fsetxattr(dir, kOpaqueXattr, "y", 1, 0) != 0) {
        return Errno(errno, entry, "fsetxattr(trusted.overlay.opaque)");
      }
      return absl::OkStatus();
    }
    // Other ".wh..wh." names are AUFS metadata (e.g. .wh..wh.plnk), not content.
    if (absl::StartsWith(name, kMetaPrefix)) return absl::OkStatus();
    std::string target = name.substr(sizeof(kWhiteoutPrefix) - 1);
    if (target.empty() || target == "." || target == "..") {
      return Refuse(entry, "bad whiteout name");
    }
    SKIFF_RETURN_IF_ERROR(MakeRoom(dir, target, false, entry).status());
    if (mknodat(dir, target.c_str(), S_IFCHR | 0, makedev(0, 0)) != 0) {
      return Errno(errno, entry, "mknod(whiteout)");
    }
    if (fchownat(dir, target.c_str(), 0, 0, AT_SYMLINK_NOFOLLOW) != 0) {
      return Errno(errno, entry, "chown(whiteout)");
    }
    return absl::OkStatus();
  }

  absl::Status Regular(struct archive* a, struct archive_entry* e, int dir, const std::string& name,
                       const std::string& entry) {
    UniqueFd fd(
        openat(dir, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) return Errno(errno, entry, "create");
    const void* buf = nullptr;
    size_t size = 0;
    la_int64_t offset = 0;
    for (;;) {
      int r = archive_read_data_block(a, &buf, &size, &offset);
      if (r == ARCHIVE_EOF) break;
      if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
        return absl::DataLossError(
            absl::StrCat("layer ", digest_, ": entry \"", entry, "\": ", archive_error_string(a)));
      }
      const char* p = static_cast<const char*>(buf);
      size_t done = 0;
      while (done < size) {
        ssize_t n = pwrite(fd.get(), p + done, size - done, offset + static_cast<off_t>(done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Errno(errno, entry, "write");
        done += static_cast<size_t>(n);
      }
    }
    // Sparse files end in a hole: the size comes from the header.
    if (ftruncate(fd.get(), archive_entry_size(e)) != 0) return Errno(errno, entry, "truncate");
    return Finish(e, fd.get(), entry, true);
  }

  // Owner, then mode (chown clears setuid), xattrs and mtime on an open fd.
  absl::Status Finish(struct archive_entry* e, int fd, const std::string& entry, bool set_time) {
    if (fchown(fd, static_cast<uid_t>(archive_entry_uid(e)),
               static_cast<gid_t>(archive_entry_gid(e))) != 0) {
      return Errno(errno, entry, "fchown");
    }
    if (fchmod(fd, archive_entry_perm(e) & 07777) != 0) return Errno(errno, entry, "fchmod");
    SKIFF_RETURN_IF_ERROR(SetXattrs(e, fd, entry));
    if (set_time) {
      struct timespec ts[2] = {{archive_entry_mtime(e), archive_entry_mtime_nsec(e)},
                               {archive_entry_mtime(e), archive_entry_mtime_nsec(e)}};
      if (futimens(fd, ts) != 0) return Errno(errno, entry, "futimens");
    }
    return absl::OkStatus();
  }

  absl::Status Entry(struct archive* a, struct archive_entry* e, const std::string& entry) {
    SKIFF_ASSIGN_OR_RETURN(std::vector<std::string> comps, Split(entry, entry));
    if (comps.empty()) return absl::OkStatus();  // "./": the layer root itself
    const std::string name = comps.back();
    for (size_t i = 0; i + 1 < comps.size(); ++i) {
      if (absl::StartsWith(comps[i], kMetaPrefix)) return absl::OkStatus();  // AUFS metadata
    }
    SKIFF_ASSIGN_OR_RETURN(UniqueFd dir, OpenDir(comps, comps.size() - 1, true, entry));
    if (absl::StartsWith(name, kWhiteoutPrefix)) return Whiteout(dir.get(), name, entry);

    if (const char* link = archive_entry_hardlink(e); link != nullptr) {
      SKIFF_ASSIGN_OR_RETURN(std::vector<std::string> target, Split(link, entry));
      if (target.empty()) return Refuse(entry, "hardlink to the layer root");
      auto tdir = OpenDir(target, target.size() - 1, false, entry);
      if (!tdir.ok()) {
        return Refuse(entry,
                      absl::StrCat("hardlink target \"", link, "\": ", tdir.status().message()));
      }
      if (target == comps) return absl::OkStatus();
      SKIFF_RETURN_IF_ERROR(MakeRoom(dir.get(), name, false, entry).status());
      if (linkat(tdir->get(), target.back().c_str(), dir.get(), name.c_str(), 0) != 0) {
        return Errno(errno, entry, "link");
      }
      return absl::OkStatus();
    }

    const mode_t type = archive_entry_filetype(e);
    const mode_t perm = archive_entry_perm(e) & 07777;
    const uid_t uid = static_cast<uid_t>(archive_entry_uid(e));
    const gid_t gid = static_cast<gid_t>(archive_entry_gid(e));
    switch (type) {
      case AE_IFDIR: {
        SKIFF_ASSIGN_OR_RETURN(bool keep, MakeRoom(dir.get(), name, true, entry));
        if (!keep && mkdirat(dir.get(), name.c_str(), 0700) != 0) {
          return Errno(errno, entry, "mkdir");
        }
        UniqueFd fd(
            openat(dir.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!fd) return Errno(errno, entry, "open(dir)");
        return Finish(e, fd.get(), entry, false);
      }
      case AE_IFREG:
        SKIFF_RETURN_IF_ERROR(MakeRoom(dir.get(), name, false, entry).status());
        return Regular(a, e, dir.get(), name, entry);
      case AE_IFLNK: {
        const char* target = archive_entry_symlink(e);
        if (target == nullptr || *target == '\0') return Refuse(entry, "empty symlink target");
        SKIFF_RETURN_IF_ERROR(MakeRoom(dir.get(), name, false, entry).status());
        if (symlinkat(target, dir.get(), name.c_str()) != 0) return Errno(errno, entry, "symlink");
        if (fchownat(dir.get(), name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) != 0) {
          return Errno(errno, entry, "lchown");
        }
        struct timespec ts[2] = {{archive_entry_mtime(e), 0}, {archive_entry_mtime(e), 0}};
        utimensat(dir.get(), name.c_str(), ts, AT_SYMLINK_NOFOLLOW);
        return absl::OkStatus();
      }
      case AE_IFCHR:
      case AE_IFBLK:
      case AE_IFIFO: {
        SKIFF_RETURN_IF_ERROR(MakeRoom(dir.get(), name, false, entry).status());
        dev_t dev =
            type == AE_IFIFO ? 0 : makedev(archive_entry_rdevmajor(e), archive_entry_rdevminor(e));
        if (mknodat(dir.get(), name.c_str(), type | perm, dev) != 0) {
          return Errno(errno, entry, "mknod");
        }
        if (fchownat(dir.get(), name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) != 0) {
          return Errno(errno, entry, "chown");
        }
        // The node was just created by us (mknod fails on an existing name): no symlink.
        if (fchmodat(dir.get(), name.c_str(), perm, 0) != 0) return Errno(errno, entry, "chmod");
        return absl::OkStatus();
      }
      case AE_IFSOCK:
        return absl::OkStatus();  // sockets are not content
      default:
        return Refuse(entry, absl::StrCat("unsupported entry type 0", type));
    }
  }

  const std::string digest_;
  UniqueFd root_;
  const std::string dest_;
  const UnpackLimits limits_;
  uint64_t entries_ = 0;
  uint64_t bytes_ = 0;
};

std::atomic<uint64_t> g_unpack_counter{0};

}  // namespace

absl::Status UnpackLayerInto(const std::string& blob_path, const std::string& layer_digest,
                             const std::string& dest, const UnpackLimits& limits) {
  UniqueFd root(open(dest.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root) return ErrnoStatus(errno, "layer ", layer_digest, ": open(", dest, ")");
  Unpacker unpacker(layer_digest, std::move(root), dest, limits);
  return unpacker.Run(blob_path);
}

absl::StatusOr<std::string> UnpackLayer(const std::string& blob_path,
                                        const std::string& layer_digest,
                                        const std::string& layers_dir, const UnpackLimits& limits) {
  SKIFF_RETURN_IF_ERROR(ValidateDigest(layer_digest));
  std::string final_dir = absl::StrCat(layers_dir, "/", DigestHex(layer_digest));
  struct stat st;
  if (lstat(final_dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return final_dir;
  std::string tmp = absl::StrCat(final_dir, ".tmp-", getpid(), "-", ++g_unpack_counter);
  if (mkdir(tmp.c_str(), 0755) != 0) return ErrnoStatus(errno, "mkdir(", tmp, ")");
  absl::Cleanup drop_tmp = [&tmp] { RemoveTree(tmp).IgnoreError(); };
  if (chmod(tmp.c_str(), 0755) != 0) return ErrnoStatus(errno, "chmod(", tmp, ")");
  SKIFF_RETURN_IF_ERROR(UnpackLayerInto(blob_path, layer_digest, tmp, limits));
  {
    UniqueFd fd(open(tmp.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd || syncfs(fd.get()) != 0) return ErrnoStatus(errno, "syncfs(", tmp, ")");
  }
  if (rename(tmp.c_str(), final_dir.c_str()) != 0) {
    if (errno == EEXIST || errno == ENOTEMPTY) return final_dir;  // unpacked concurrently
    return ErrnoStatus(errno, "rename(", tmp, ", ", final_dir, ")");
  }
  std::move(drop_tmp).Cancel();
  return final_dir;
}

}  // namespace skiff::images
