#pragma once

// Builds tar layers in memory with libarchive's writer (pax format; none/gzip/zstd), for
// tests of layer unpacking and for images pushed to test registries.

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

#include <string>
#include <utility>
#include <vector>

namespace skiff::images::testing {

enum class TarCompression { kNone, kGzip, kZstd };

class TarBuilder {
 public:
  explicit TarBuilder(TarCompression c = TarCompression::kNone) : a_(archive_write_new()) {
    archive_write_set_format_pax_restricted(a_);
    if (c == TarCompression::kGzip) archive_write_add_filter_gzip(a_);
    if (c == TarCompression::kZstd) archive_write_add_filter_zstd(a_);
    archive_write_set_bytes_in_last_block(a_, 1);
    archive_write_open(a_, &out_, nullptr, &TarBuilder::OnWrite, nullptr);
  }
  ~TarBuilder() {
    if (a_ != nullptr) archive_write_free(a_);
  }
  TarBuilder(const TarBuilder&) = delete;
  TarBuilder& operator=(const TarBuilder&) = delete;

  TarBuilder& File(const std::string& path, const std::string& data, int mode = 0644, int uid = 0,
                   int gid = 0, std::vector<std::pair<std::string, std::string>> xattrs = {}) {
    archive_entry* e = Entry(path, AE_IFREG, mode, uid, gid);
    archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
    for (const auto& [k, v] : xattrs)
      archive_entry_xattr_add_entry(e, k.c_str(), v.data(), v.size());
    archive_write_header(a_, e);
    archive_write_data(a_, data.data(), data.size());
    archive_entry_free(e);
    return *this;
  }
  TarBuilder& Dir(const std::string& path, int mode = 0755, int uid = 0, int gid = 0) {
    return Simple(Entry(path, AE_IFDIR, mode, uid, gid));
  }
  TarBuilder& Symlink(const std::string& path, const std::string& target) {
    archive_entry* e = Entry(path, AE_IFLNK, 0777, 0, 0);
    archive_entry_set_symlink(e, target.c_str());
    return Simple(e);
  }
  TarBuilder& Hardlink(const std::string& path, const std::string& target) {
    archive_entry* e = Entry(path, AE_IFREG, 0644, 0, 0);
    archive_entry_set_hardlink(e, target.c_str());
    archive_entry_set_size(e, 0);
    return Simple(e);
  }
  TarBuilder& CharDev(const std::string& path, int major, int minor, int mode = 0666) {
    archive_entry* e = Entry(path, AE_IFCHR, mode, 0, 0);
    archive_entry_set_rdevmajor(e, major);
    archive_entry_set_rdevminor(e, minor);
    return Simple(e);
  }
  TarBuilder& Fifo(const std::string& path, int mode = 0644) {
    return Simple(Entry(path, AE_IFIFO, mode, 0, 0));
  }

  // Closes the archive and returns its bytes.
  std::string Finish() {
    archive_write_close(a_);
    archive_write_free(a_);
    a_ = nullptr;
    return out_;
  }

 private:
  static la_ssize_t OnWrite(struct archive*, void* user, const void* buf, size_t n) {
    static_cast<std::string*>(user)->append(static_cast<const char*>(buf), n);
    return static_cast<la_ssize_t>(n);
  }
  archive_entry* Entry(const std::string& path, unsigned type, int mode, int uid, int gid) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, path.c_str());
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, static_cast<mode_t>(mode));
    archive_entry_set_uid(e, uid);
    archive_entry_set_gid(e, gid);
    archive_entry_set_mtime(e, 1700000000, 0);
    return e;
  }
  TarBuilder& Simple(archive_entry* e) {
    archive_write_header(a_, e);
    archive_entry_free(e);
    return *this;
  }

  std::string out_;
  struct archive* a_;
};

}  // namespace skiff::images::testing
