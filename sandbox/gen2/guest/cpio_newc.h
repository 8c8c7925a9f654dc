#pragma once

// A writer for the "newc" cpio format (SVR4 without checksums: magic 070701), the format
// the Linux kernel unpacks as an initramfs. In memory: an initramfs is a few MiB.

#include <cstdint>
#include <string>
#include <string_view>

namespace skiff::gen2::guest {

class CpioNewcWriter {
 public:
  // `path` is relative ("init", "dev/console"); parents must be added first. Mode bits
  // are the permission bits only; the type comes from the call.
  void AddDirectory(std::string_view path, uint32_t mode);
  void AddFile(std::string_view path, uint32_t mode, std::string_view data);
  void AddCharDevice(std::string_view path, uint32_t mode, uint32_t major, uint32_t minor);

  // Appends the TRAILER!!! entry and returns the archive (padded to 512 bytes).
  std::string Finish();

 private:
  void AddEntry(std::string_view path, uint32_t mode, uint32_t rdev_major, uint32_t rdev_minor,
                std::string_view data);

  std::string out_;
  uint32_t next_ino_ = 1;
};

}  // namespace skiff::gen2::guest
