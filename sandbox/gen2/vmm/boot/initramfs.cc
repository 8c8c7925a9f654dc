#include "sandbox/gen2/vmm/boot/initramfs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/str_format.h"
#include "sandbox/common/status.h"
#include "sandbox/common/unique_fd.h"
#include "sandbox/gen2/vmm/layout.h"

namespace skiff::gen2::boot {

absl::StatusOr<uint64_t> PlaceInitramfs(uint64_t size, uint64_t kernel_end,
                                        uint64_t initrd_addr_max, const GuestMemory& memory) {
  uint64_t low_end = 0;
  for (const MemoryRegion& r : memory.regions()) {
    if (r.gpa == 0) low_end = r.size;
  }
  // initrd_addr_max is the highest address the initramfs may occupy (inclusive).
  const uint64_t limit = std::min(low_end, initrd_addr_max + 1);
  const uint64_t floor = (kernel_end + layout::kPageSize - 1) & ~(layout::kPageSize - 1);
  if (size == 0 || size > limit || ((limit - size) & ~(layout::kPageSize - 1)) < floor) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("initramfs of %d bytes does not fit between the kernel's end %#x and %#x",
                        size, kernel_end, limit));
  }
  return (limit - size) & ~(layout::kPageSize - 1);
}

absl::StatusOr<InitramfsPlacement> LoadInitramfs(const std::string& path, uint64_t kernel_end,
                                                 uint64_t initrd_addr_max,
                                                 const GuestMemory& memory) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, "open(initramfs, ", path, ")");
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, "fstat(initramfs, ", path, ")");
  if (!S_ISREG(st.st_mode) || st.st_size == 0) {
    return absl::InvalidArgumentError("initramfs " + path + ": not a non-empty regular file");
  }
  InitramfsPlacement placement;
  placement.size = static_cast<uint64_t>(st.st_size);
  absl::StatusOr<uint64_t> addr =
      PlaceInitramfs(placement.size, kernel_end, initrd_addr_max, memory);
  if (!addr.ok()) return Annotate(addr.status(), "initramfs " + path);
  placement.addr = *addr;
  SKIFF_ASSIGN_OR_RETURN(std::span<uint8_t> dst, memory.Slice(placement.addr, placement.size));
  size_t done = 0;
  while (done < dst.size()) {
    const ssize_t n = pread(fd.get(), dst.data() + done, dst.size() - done, done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "read(initramfs, ", path, ")");
    if (n == 0) return absl::DataLossError("initramfs " + path + ": shrank while being read");
    done += static_cast<size_t>(n);
  }
  return placement;
}

}  // namespace skiff::gen2::boot
