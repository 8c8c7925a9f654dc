#include "sandbox/gen2/guest/cpio_newc.h"

#include <sys/stat.h>

#include <cstdio>

namespace skiff::gen2::guest {

namespace {

void Pad4(std::string& out) {
  while (out.size() % 4 != 0) out.push_back('\0');
}

void Hex8(std::string& out, uint32_t v) {
  char buf[9];
  std::snprintf(buf, sizeof(buf), "%08X", v);
  out.append(buf, 8);
}

}  // namespace

void CpioNewcWriter::AddEntry(std::string_view path, uint32_t mode, uint32_t rdev_major,
                              uint32_t rdev_minor, std::string_view data) {
  out_ += "070701";
  const bool trailer = path == "TRAILER!!!";
  Hex8(out_, trailer ? 0 : next_ino_++);               // c_ino
  Hex8(out_, mode);                                    // c_mode
  Hex8(out_, 0);                                       // c_uid
  Hex8(out_, 0);                                       // c_gid
  Hex8(out_, S_ISDIR(mode) ? 2 : 1);                   // c_nlink
  Hex8(out_, 0);                                       // c_mtime: reproducible
  Hex8(out_, static_cast<uint32_t>(data.size()));      // c_filesize
  Hex8(out_, 0);                                       // c_devmajor
  Hex8(out_, 0);                                       // c_devminor
  Hex8(out_, rdev_major);                              // c_rdevmajor
  Hex8(out_, rdev_minor);                              // c_rdevminor
  Hex8(out_, static_cast<uint32_t>(path.size() + 1));  // c_namesize, with the NUL
  Hex8(out_, 0);                                       // c_check
  out_.append(path);
  out_.push_back('\0');
  Pad4(out_);
  out_.append(data);
  Pad4(out_);
}

void CpioNewcWriter::AddDirectory(std::string_view path, uint32_t mode) {
  AddEntry(path, S_IFDIR | (mode & 07777), 0, 0, {});
}

void CpioNewcWriter::AddFile(std::string_view path, uint32_t mode, std::string_view data) {
  AddEntry(path, S_IFREG | (mode & 07777), 0, 0, data);
}

void CpioNewcWriter::AddCharDevice(std::string_view path, uint32_t mode, uint32_t major,
                                   uint32_t minor) {
  AddEntry(path, S_IFCHR | (mode & 07777), major, minor, {});
}

std::string CpioNewcWriter::Finish() {
  AddEntry("TRAILER!!!", 0, 0, 0, {});
  while (out_.size() % 512 != 0) out_.push_back('\0');
  return std::move(out_);
}

}  // namespace skiff::gen2::guest
