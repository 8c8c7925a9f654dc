#pragma once

// Instance networking over rtnetlink (no `ip` binary): a veth pair per instance, one end
// in the host netns, the other moved into the instance's netns and renamed eth0.
// Addressing is a /31 point-to-point pair from a pool the agent owns:
//   host end  = host_ip/31, instance end = instance_ip/31, default route via host_ip.
// Deleting either end (or the netns going away with its last process) removes both.

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace skiff {

struct VethConfig {
  std::string host_ifname;  // <= 15 chars, e.g. "sk-<8 hex>"
  std::string host_ip;      // dotted quad
  std::string instance_ip;  // dotted quad
  uint32_t prefix_len = 31;
  std::string instance_ifname = "eth0";
};

// In the host netns: creates the pair, moves the peer into the netns of `netns_pid`,
// addresses and brings up the host end. On failure nothing is left behind.
absl::Status CreateVethPair(const VethConfig& cfg, pid_t netns_pid);

// Runs inside the instance's netns (async-signal-safe: no allocation; may run between
// clone() and execve()): brings up lo, addresses and brings up the instance end,
// adds the default route via host_ip. Returns 0 or an errno (ENODEV: no such ifname,
// EINVAL: bad arguments). Uses about 10 KiB of stack (netlink buffers).
int ConfigureInstanceNetwork(const char* ifname, uint32_t instance_ip_be, uint32_t host_ip_be,
                             uint32_t prefix_len);

// In the host netns: addresses an existing link (gen2's tap) with ip/prefix_len and brings
// it up. NotFound if there is no such link.
absl::Status AddressAndUp(const std::string& ifname, const std::string& ip, uint32_t prefix_len);

// Deletes a host-side link by name; NotFound if it does not exist.
absl::Status DeleteLink(const std::string& ifname);

// True if a link with this name exists in the calling thread's netns.
absl::StatusOr<bool> LinkExists(const std::string& ifname);

// Names of all links in the calling thread's netns (an RTM_GETLINK dump), in index order.
absl::StatusOr<std::vector<std::string>> ListLinks();

// Parses a dotted quad into network byte order; InvalidArgument names the input.
absl::StatusOr<uint32_t> ParseIpv4(const std::string& dotted);

// An IPv4 prefix, e.g. "10.88.0.0/16": network byte order address and length.
struct Ipv4Cidr {
  uint32_t addr_be = 0;
  uint32_t prefix_len = 0;
};

// Parses "a.b.c.d/n" (n 0..32, no host bits set); InvalidArgument names the input.
absl::StatusOr<Ipv4Cidr> ParseCidr(const std::string& cidr);

// Routes of the main table in the calling thread's netns (see the pool's blackhole in
// docs/operations.md). Both take a CIDR with prefix length 1..32 (never a default route).
//
// Installs `unreachable <cidr>` (RTN_UNREACHABLE): packets to addresses inside it that no
// more specific route covers fail at once with EHOSTUNREACH instead of following the
// default route. Idempotent: replaces a route to exactly this prefix if one exists.
absl::Status AddUnreachableRoute(const std::string& cidr);
// Deletes the main-table route to exactly this prefix (whatever its type); NotFound if
// there is none.
absl::Status DeleteRoute(const std::string& cidr);

// One IPv4 route of the main table.
struct RouteInfo {
  std::string dst;   // "10.88.0.0/16" ("0.0.0.0/0" for the default route)
  std::string type;  // "unicast", "unreachable", "blackhole", "prohibit", "local", ...
  std::string dev;   // output link name, empty if none
};

// The IPv4 main-table routes of the calling thread's netns (an RTM_GETROUTE dump).
absl::StatusOr<std::vector<RouteInfo>> ListRoutes();

}  // namespace skiff
