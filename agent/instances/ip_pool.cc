#include "agent/instances/ip_pool.h"

#include <arpa/inet.h>

#include <charconv>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace skiff::agent {

std::string FormatIpv4(uint32_t a) {
  return absl::StrFormat("%u.%u.%u.%u", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff);
}

absl::StatusOr<uint32_t> ParseIpv4HostOrder(const std::string& dotted) {
  in_addr addr;
  if (dotted.size() > 15 || inet_pton(AF_INET, dotted.c_str(), &addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", dotted.substr(0, 32), "\" is not a dotted-quad IPv4 address"));
  }
  return ntohl(addr.s_addr);
}

absl::StatusOr<std::unique_ptr<IpPool>> IpPool::Create(const std::string& cidr) {
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("ip_pool: \"", cidr.substr(0, 64), "\" ", why));
  };
  const size_t slash = cidr.find('/');
  if (slash == std::string::npos) return bad("is not a.b.c.d/N");
  auto base = ParseIpv4HostOrder(cidr.substr(0, slash));
  if (!base.ok()) return bad("has a bad address");
  const std::string len_text = cidr.substr(slash + 1);
  uint32_t len = 0;
  auto [p, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), len);
  if (len_text.empty() || ec != std::errc() || p != len_text.data() + len_text.size()) {
    return bad("has a bad prefix length");
  }
  if (len < 8 || len > 30) return bad("prefix length must be in 8..30");
  const uint32_t host_mask = (len == 32) ? 0 : (0xffffffffu >> len);
  if ((*base & host_mask) != 0) return bad("has host bits set");
  return std::unique_ptr<IpPool>(new IpPool(*base, len));
}

IpPool::IpPool(uint32_t base, uint32_t prefix_len)
    : base_(base), prefix_len_(prefix_len), pairs_(size_t{1} << (32 - prefix_len - 1)) {
  absl::MutexLock lock(&mu_);
  used_.assign(pairs_, false);
  // First and last pair are reserved.
  used_.front() = true;
  used_.back() = true;
}

IpPair IpPool::PairAt(size_t index) const {
  const uint32_t host = base_ + static_cast<uint32_t>(index * 2);
  IpPair pair;
  pair.host_ip = FormatIpv4(host);
  pair.instance_ip = FormatIpv4(host + 1);
  pair.prefix_len = 31;
  pair.host_veth = absl::StrFormat("sk-%08x", host);
  return pair;
}

absl::StatusOr<size_t> IpPool::IndexOf(const std::string& host_ip) const {
  auto addr = ParseIpv4HostOrder(host_ip);
  if (!addr.ok()) return absl::InvalidArgumentError(absl::StrCat("ip ", addr.status().message()));
  const uint32_t mask = 0xffffffffu << (32 - prefix_len_);
  if ((*addr & mask) != base_) {
    return absl::InvalidArgumentError(
        absl::StrCat("ip ", host_ip, " is outside the pool ", FormatIpv4(base_), "/", prefix_len_));
  }
  const uint32_t offset = *addr - base_;
  if (offset % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("ip ", host_ip, " is not a host (even) end"));
  }
  const size_t index = offset / 2;
  if (index == 0 || index + 1 == pairs_) {
    return absl::InvalidArgumentError(absl::StrCat("ip ", host_ip, " is a reserved pair"));
  }
  return index;
}

absl::StatusOr<IpPair> IpPool::Allocate() {
  absl::MutexLock lock(&mu_);
  const size_t n = used_.size();
  for (size_t i = 0; i < n; ++i) {
    const size_t index = (next_ + i) % n;
    if (used_[index]) continue;
    used_[index] = true;
    ++in_use_;
    next_ = (index + 1) % n;
    return PairAt(index);
  }
  return absl::ResourceExhaustedError(absl::StrCat("ip_pool ", FormatIpv4(base_), "/", prefix_len_,
                                                   ": all ", n - 2, " address pairs in use"));
}

absl::Status IpPool::Reserve(const std::string& host_ip) {
  auto index = IndexOf(host_ip);
  if (!index.ok()) return index.status();
  absl::MutexLock lock(&mu_);
  if (used_[*index]) {
    return absl::AlreadyExistsError(absl::StrCat("ip ", host_ip, " is already in use"));
  }
  used_[*index] = true;
  ++in_use_;
  return absl::OkStatus();
}

void IpPool::Release(const std::string& host_ip) {
  auto index = IndexOf(host_ip);
  if (!index.ok()) return;
  absl::MutexLock lock(&mu_);
  if (!used_[*index]) return;
  used_[*index] = false;
  --in_use_;
}

size_t IpPool::in_use() const {
  absl::MutexLock lock(&mu_);
  return in_use_;
}

}  // namespace skiff::agent
