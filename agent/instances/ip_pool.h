#pragma once

// The node's pool of /31 point-to-point pairs for instance veths, carved from one
// CIDR (default 10.88.0.0/16): pair k is (base + 2k, base + 2k + 1); the host end is the
// even address, the instance end the odd one. The first and the last pair of the CIDR
// are never handed out (network/broadcast addresses of the whole range). Allocation is
// next-fit, so a just-released pair is not reused at once. Thread-safe.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace skiff::agent {

struct IpPair {
  std::string host_ip;      // even
  std::string instance_ip;  // odd
  uint32_t prefix_len = 31;
  // "sk-<8 hex>": the host end's address in hex, unique while the pair is allocated.
  std::string host_veth;
};

class IpPool {
 public:
  // InvalidArgument naming `ip_pool` unless `cidr` is a.b.c.d/N with 8 <= N <= 30 and no
  // host bits set.
  static absl::StatusOr<std::unique_ptr<IpPool>> Create(const std::string& cidr);

  // ResourceExhausted when every pair is in use.
  absl::StatusOr<IpPair> Allocate();
  // Marks the pair whose host end is `host_ip` as used (recovery after a restart).
  // InvalidArgument if outside the pool or not an even host end; AlreadyExists if used.
  absl::Status Reserve(const std::string& host_ip);
  // Returns the pair whose host end is `host_ip`; unknown or free addresses are ignored.
  void Release(const std::string& host_ip);

  size_t capacity() const { return pairs_ - 2; }
  size_t in_use() const;

 private:
  IpPool(uint32_t base, uint32_t prefix_len);
  IpPair PairAt(size_t index) const;
  absl::StatusOr<size_t> IndexOf(const std::string& host_ip) const;

  const uint32_t base_;  // host byte order
  const uint32_t prefix_len_;
  const size_t pairs_;  // including the two reserved ones
  mutable absl::Mutex mu_;
  std::vector<bool> used_ ABSL_GUARDED_BY(mu_);
  size_t next_ ABSL_GUARDED_BY(mu_) = 1;
  size_t in_use_ ABSL_GUARDED_BY(mu_) = 0;
};

// Dotted quad of a host-byte-order address.
std::string FormatIpv4(uint32_t host_order);
// Host-byte-order address of a dotted quad; InvalidArgument names the input.
absl::StatusOr<uint32_t> ParseIpv4HostOrder(const std::string& dotted);

}  // namespace skiff::agent
