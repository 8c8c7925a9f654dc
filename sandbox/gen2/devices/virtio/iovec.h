#pragma once

// Descriptor-chain spans as the iovec arrays readv/writev/sendmsg take.

#include <sys/uio.h>

#include <climits>
#include <cstdint>
#include <span>
#include <vector>

namespace skiff::gen2::virtio {

// At most IOV_MAX entries (the kernel refuses more); callers that may have more loop.
inline std::vector<iovec> ToIovecs(const std::vector<std::span<uint8_t>>& spans) {
  std::vector<iovec> iov;
  iov.reserve(spans.size() < IOV_MAX ? spans.size() : IOV_MAX);
  for (std::span<uint8_t> s : spans) {
    if (iov.size() == IOV_MAX) break;
    iov.push_back({s.data(), s.size()});
  }
  return iov;
}

}  // namespace skiff::gen2::virtio
