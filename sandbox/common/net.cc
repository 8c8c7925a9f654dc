#include "sandbox/common/net.h"

#include <arpa/inet.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <map>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "sandbox/common/status.h"
#include "sandbox/common/unique_fd.h"

namespace skiff {
namespace {

// Everything in this namespace is async-signal-safe: fixed stack buffers, raw syscalls,
// errno-style results. ConfigureInstanceNetwork runs it between clone() and execve().

constexpr size_t kReqBytes = 512;
constexpr size_t kRespBytes = 8192;

// One rtnetlink request assembled in a fixed buffer.
class NlRequest {
 public:
  NlRequest(uint16_t type, uint16_t flags) {
    memset(buf_, 0, sizeof(buf_));
    hdr()->nlmsg_len = NLMSG_HDRLEN;
    hdr()->nlmsg_type = type;
    hdr()->nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | NLM_F_ACK | flags);
  }
  nlmsghdr* hdr() { return reinterpret_cast<nlmsghdr*>(buf_); }
  bool ok() const { return !overflow_; }

  // Reserves `n` zeroed bytes (aligned) at the end of the message.
  void* Put(size_t n) {
    size_t at = NLMSG_ALIGN(hdr()->nlmsg_len);
    if (at + NLMSG_ALIGN(n) > sizeof(buf_)) {
      overflow_ = true;
      return scratch_;
    }
    hdr()->nlmsg_len = static_cast<uint32_t>(at + NLMSG_ALIGN(n));
    return buf_ + at;
  }
  void Attr(uint16_t type, const void* data, size_t n) {
    auto* rta = static_cast<rtattr*>(Put(RTA_LENGTH(n)));
    rta->rta_type = type;
    rta->rta_len = static_cast<uint16_t>(RTA_LENGTH(n));
    if (n && !overflow_) memcpy(RTA_DATA(rta), data, n);
  }
  void AttrStr(uint16_t type, const char* s) { Attr(type, s, strlen(s) + 1); }
  void AttrU32(uint16_t type, uint32_t v) { Attr(type, &v, sizeof(v)); }
  // Nested attributes: Begin returns the offset of the nest; End fixes its length.
  size_t Begin(uint16_t type) {
    size_t at = NLMSG_ALIGN(hdr()->nlmsg_len);
    Attr(type, nullptr, 0);
    return at;
  }
  void End(size_t at) {
    if (overflow_) return;
    auto* rta = reinterpret_cast<rtattr*>(buf_ + at);
    rta->rta_len = static_cast<uint16_t>(hdr()->nlmsg_len - at);
  }

 private:
  alignas(nlmsghdr) char buf_[kReqBytes];
  alignas(nlmsghdr) char scratch_[kReqBytes];  // target of writes after an overflow
  bool overflow_ = false;
};

int OpenRtnl(UniqueFd* out) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return errno;
  out->Reset(fd);
  return 0;
}

// Sends `req` and reads until its ack. Returns 0 or a positive errno; a RTM_NEWLINK
// answer (to RTM_GETLINK) stores the link's index in *ifindex.
int Transact(int fd, NlRequest& req, int* ifindex = nullptr) {
  if (!req.ok()) return EMSGSIZE;
  static_assert(sizeof(uint32_t) == 4);
  // A per-call sequence number; no shared state (the child may be a fresh clone).
  const uint32_t seq = static_cast<uint32_t>(req.hdr()->nlmsg_type) << 16 | 0x5c1f;
  req.hdr()->nlmsg_seq = seq;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  ssize_t n;
  do {
    n = sendto(fd, req.hdr(), req.hdr()->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel),
               sizeof(kernel));
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno;
  alignas(nlmsghdr) char resp[kRespBytes];
  for (;;) {
    do {
      n = recv(fd, resp, sizeof(resp), 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return errno;
    if (n == 0) return EPROTO;
    int len = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(resp); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_seq != seq) continue;
      if (h->nlmsg_type == NLMSG_ERROR) {
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) return EPROTO;
        const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
        return -e->error;  // 0 = ack
      }
      if (h->nlmsg_type == RTM_NEWLINK && ifindex != nullptr &&
          h->nlmsg_len >= NLMSG_LENGTH(sizeof(ifinfomsg))) {
        *ifindex = static_cast<const ifinfomsg*>(NLMSG_DATA(h))->ifi_index;
      }
    }
  }
}

int GetIfIndex(int fd, const char* name, int* index) {
  NlRequest req(RTM_GETLINK, 0);
  auto* ifi = static_cast<ifinfomsg*>(req.Put(sizeof(ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  req.AttrStr(IFLA_IFNAME, name);
  *index = 0;
  int err = Transact(fd, req, index);
  if (err == 0 && *index <= 0) return ENODEV;
  return err;
}

int SetLinkUp(int fd, int index) {
  NlRequest req(RTM_NEWLINK, 0);
  auto* ifi = static_cast<ifinfomsg*>(req.Put(sizeof(ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = index;
  ifi->ifi_flags = IFF_UP;
  ifi->ifi_change = IFF_UP;
  return Transact(fd, req);
}

int AddAddress(int fd, int index, uint32_t ip_be, uint32_t prefix_len) {
  NlRequest req(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
  auto* ifa = static_cast<ifaddrmsg*>(req.Put(sizeof(ifaddrmsg)));
  ifa->ifa_family = AF_INET;
  ifa->ifa_prefixlen = static_cast<uint8_t>(prefix_len);
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  ifa->ifa_index = static_cast<uint32_t>(index);
  req.AttrU32(IFA_LOCAL, ip_be);
  req.AttrU32(IFA_ADDRESS, ip_be);
  return Transact(fd, req);
}

int AddDefaultRoute(int fd, int index, uint32_t gateway_be) {
  NlRequest req(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
  auto* rtm = static_cast<rtmsg*>(req.Put(sizeof(rtmsg)));
  rtm->rtm_family = AF_INET;
  rtm->rtm_dst_len = 0;
  rtm->rtm_table = RT_TABLE_MAIN;
  rtm->rtm_protocol = RTPROT_BOOT;
  rtm->rtm_scope = RT_SCOPE_UNIVERSE;
  rtm->rtm_type = RTN_UNICAST;
  req.AttrU32(RTA_GATEWAY, gateway_be);
  req.AttrU32(RTA_OIF, static_cast<uint32_t>(index));
  return Transact(fd, req);
}

int CreateVeth(int fd, const char* host_name, const char* peer_name, pid_t netns_pid) {
  NlRequest req(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
  auto* ifi = static_cast<ifinfomsg*>(req.Put(sizeof(ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  req.AttrStr(IFLA_IFNAME, host_name);
  size_t linkinfo = req.Begin(IFLA_LINKINFO);
  req.AttrStr(IFLA_INFO_KIND, "veth");
  size_t data = req.Begin(IFLA_INFO_DATA);
  size_t peer = req.Begin(VETH_INFO_PEER);
  auto* peer_ifi = static_cast<ifinfomsg*>(req.Put(sizeof(ifinfomsg)));
  peer_ifi->ifi_family = AF_UNSPEC;
  req.AttrStr(IFLA_IFNAME, peer_name);
  req.AttrU32(IFLA_NET_NS_PID, static_cast<uint32_t>(netns_pid));
  req.End(peer);
  req.End(data);
  req.End(linkinfo);
  return Transact(fd, req);
}

int DeleteLinkByName(int fd, const char* name) {
  NlRequest req(RTM_DELLINK, 0);
  auto* ifi = static_cast<ifinfomsg*>(req.Put(sizeof(ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  req.AttrStr(IFLA_IFNAME, name);
  return Transact(fd, req);
}

absl::Status ValidateIfName(const char* field, const std::string& name) {
  auto bad = [&](const char* why) {
    return absl::InvalidArgumentError(absl::StrCat(field, " \"", name, "\": ", why));
  };
  if (name.empty() || name.size() >= IFNAMSIZ) return bad("must be 1 to 15 characters");
  if (name == "." || name == "..") return bad("reserved name");
  for (char c : name) {
    const bool okc = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '-' || c == '_' || c == '.';
    if (!okc) return bad("only [A-Za-z0-9._-] allowed");
  }
  return absl::OkStatus();
}

absl::Status LinkError(int err, const std::string& op) {
  if (err == ENODEV) return absl::NotFoundError(absl::StrCat(op, ": ENODEV (no such device)"));
  return ErrnoStatus(err, op);
}

// Sends a NLM_F_DUMP request (a header of `family_bytes` zeroed bytes whose first byte is
// the address family) and calls `on_msg` for each answer until NLMSG_DONE.
absl::Status Dump(uint16_t type, uint8_t family, size_t family_bytes, const char* what,
                  const std::function<void(const nlmsghdr*)>& on_msg) {
  UniqueFd fd;
  if (int err = OpenRtnl(&fd)) return ErrnoStatus(err, "socket(AF_NETLINK, NETLINK_ROUTE)");
  NlRequest req(type, NLM_F_DUMP);
  req.hdr()->nlmsg_flags &= static_cast<uint16_t>(~NLM_F_ACK);
  auto* head = static_cast<uint8_t*>(req.Put(family_bytes));
  head[0] = family;
  const uint32_t seq = 0x5c1f12u + type;
  req.hdr()->nlmsg_seq = seq;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd.get(), req.hdr(), req.hdr()->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel),
             sizeof(kernel)) < 0) {
    return ErrnoStatus(errno, "sendto(", what, " dump)");
  }
  std::vector<char> buf(32768);
  for (;;) {
    ssize_t n = recv(fd.get(), buf.data(), buf.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "recv(", what, " dump)");
    if (n == 0) return ErrnoStatus(EPROTO, what, " dump");
    int len = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, len);
         h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_seq != seq) continue;
      if (h->nlmsg_type == NLMSG_DONE) return absl::OkStatus();
      if (h->nlmsg_type == NLMSG_ERROR) {
        const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
        return ErrnoStatus(-e->error, what, " dump");
      }
      on_msg(h);
    }
  }
}

const char* RouteTypeName(uint8_t type) {
  switch (type) {
    case RTN_UNICAST:
      return "unicast";
    case RTN_LOCAL:
      return "local";
    case RTN_BROADCAST:
      return "broadcast";
    case RTN_ANYCAST:
      return "anycast";
    case RTN_MULTICAST:
      return "multicast";
    case RTN_BLACKHOLE:
      return "blackhole";
    case RTN_UNREACHABLE:
      return "unreachable";
    case RTN_PROHIBIT:
      return "prohibit";
    case RTN_THROW:
      return "throw";
    case RTN_NAT:
      return "nat";
    default:
      return "other";
  }
}

std::string FormatIpv4(uint32_t addr_be) {
  const auto* b = reinterpret_cast<const uint8_t*>(&addr_be);
  return absl::StrCat(b[0], ".", b[1], ".", b[2], ".", b[3]);
}

// A route request for the main table: family, destination prefix, type.
void PutRoute(NlRequest& req, const Ipv4Cidr& dst, uint8_t type) {
  auto* rtm = static_cast<rtmsg*>(req.Put(sizeof(rtmsg)));
  rtm->rtm_family = AF_INET;
  rtm->rtm_dst_len = static_cast<uint8_t>(dst.prefix_len);
  rtm->rtm_table = RT_TABLE_MAIN;
  rtm->rtm_protocol = RTPROT_STATIC;
  rtm->rtm_scope = type == RTN_UNSPEC ? RT_SCOPE_NOWHERE : RT_SCOPE_UNIVERSE;
  rtm->rtm_type = type;
  req.AttrU32(RTA_DST, dst.addr_be);
}

absl::StatusOr<Ipv4Cidr> ParseRouteCidr(const std::string& cidr) {
  SKIFF_ASSIGN_OR_RETURN(Ipv4Cidr dst, ParseCidr(cidr));
  if (dst.prefix_len == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("route \"", cidr, "\": prefix length 0 (the default route) is refused"));
  }
  return dst;
}

}  // namespace

absl::StatusOr<Ipv4Cidr> ParseCidr(const std::string& cidr) {
  auto bad = [&](const char* why) {
    return absl::InvalidArgumentError(absl::StrCat("CIDR \"", cidr, "\": ", why));
  };
  const size_t slash = cidr.find('/');
  if (slash == std::string::npos || cidr.size() > 18) return bad("expected a.b.c.d/n");
  absl::StatusOr<uint32_t> addr = ParseIpv4(cidr.substr(0, slash));
  if (!addr.ok()) return bad("bad address");
  const std::string len_str = cidr.substr(slash + 1);
  uint32_t len = 0;
  if (len_str.empty() || len_str.size() > 2 ||
      len_str.find_first_not_of("0123456789") != std::string::npos ||
      !absl::SimpleAtoi(len_str, &len) || len > 32) {
    return bad("prefix length must be 0..32");
  }
  const uint32_t mask = len == 0 ? 0 : ~uint32_t{0} << (32 - len);
  if ((ntohl(*addr) & ~mask) != 0) return bad("host bits set");
  return Ipv4Cidr{*addr, len};
}

absl::Status AddUnreachableRoute(const std::string& cidr) {
  SKIFF_ASSIGN_OR_RETURN(Ipv4Cidr dst, ParseRouteCidr(cidr));
  UniqueFd fd;
  if (int err = OpenRtnl(&fd)) return ErrnoStatus(err, "socket(AF_NETLINK, NETLINK_ROUTE)");
  NlRequest req(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE);
  PutRoute(req, dst, RTN_UNREACHABLE);
  if (int err = Transact(fd.get(), req)) {
    return ErrnoStatus(err, "RTM_NEWROUTE(unreachable ", cidr, ")");
  }
  return absl::OkStatus();
}

absl::Status DeleteRoute(const std::string& cidr) {
  SKIFF_ASSIGN_OR_RETURN(Ipv4Cidr dst, ParseRouteCidr(cidr));
  UniqueFd fd;
  if (int err = OpenRtnl(&fd)) return ErrnoStatus(err, "socket(AF_NETLINK, NETLINK_ROUTE)");
  NlRequest req(RTM_DELROUTE, 0);
  PutRoute(req, dst, RTN_UNSPEC);
  auto* rtm = reinterpret_cast<rtmsg*>(NLMSG_DATA(req.hdr()));
  rtm->rtm_protocol = RTPROT_UNSPEC;  // any protocol
  if (int err = Transact(fd.get(), req)) {
    if (err == ESRCH) {
      return absl::NotFoundError(absl::StrCat("RTM_DELROUTE(", cidr, "): ESRCH (no such route)"));
    }
    return ErrnoStatus(err, "RTM_DELROUTE(", cidr, ")");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<RouteInfo>> ListRoutes() {
  std::map<int, std::string> names;
  SKIFF_RETURN_IF_ERROR(
      Dump(RTM_GETLINK, AF_UNSPEC, sizeof(ifinfomsg), "RTM_GETLINK", [&](const nlmsghdr* h) {
        if (h->nlmsg_type != RTM_NEWLINK) return;
        const auto* info = static_cast<const ifinfomsg*>(NLMSG_DATA(h));
        int alen = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof(*info)));
        for (auto* a = IFLA_RTA(info); RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
          if (a->rta_type != IFLA_IFNAME) continue;
          const char* p = static_cast<const char*>(RTA_DATA(a));
          names[info->ifi_index] = std::string(p, strnlen(p, RTA_PAYLOAD(a)));
        }
      }));
  std::vector<RouteInfo> routes;
  SKIFF_RETURN_IF_ERROR(
      Dump(RTM_GETROUTE, AF_INET, sizeof(rtmsg), "RTM_GETROUTE", [&](const nlmsghdr* h) {
        if (h->nlmsg_type != RTM_NEWROUTE) return;
        const auto* rtm = static_cast<const rtmsg*>(NLMSG_DATA(h));
        if (rtm->rtm_family != AF_INET) return;
        uint32_t table = rtm->rtm_table;
        uint32_t dst = 0;
        int oif = 0;
        int alen = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof(*rtm)));
        for (auto* a = RTM_RTA(rtm); RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
          if (a->rta_type == RTA_TABLE && RTA_PAYLOAD(a) >= 4) {
            memcpy(&table, RTA_DATA(a), 4);
          } else if (a->rta_type == RTA_DST && RTA_PAYLOAD(a) >= 4) {
            memcpy(&dst, RTA_DATA(a), 4);
          } else if (a->rta_type == RTA_OIF && RTA_PAYLOAD(a) >= 4) {
            memcpy(&oif, RTA_DATA(a), 4);
          }
        }
        if (table != RT_TABLE_MAIN) return;
        RouteInfo r;
        r.dst = absl::StrCat(FormatIpv4(dst), "/", rtm->rtm_dst_len);
        r.type = RouteTypeName(rtm->rtm_type);
        if (oif > 0) {
          auto it = names.find(oif);
          r.dev = it != names.end() ? it->second : absl::StrCat("if", oif);
        }
        routes.push_back(std::move(r));
      }));
  return routes;
}

absl::StatusOr<uint32_t> ParseIpv4(const std::string& dotted) {
  in_addr a{};
  if (dotted.size() > 15 || inet_pton(AF_INET, dotted.c_str(), &a) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("\"", dotted, "\" is not an IPv4 dotted quad"));
  }
  return a.s_addr;
}

absl::Status CreateVethPair(const VethConfig& cfg, pid_t netns_pid) {
  SKIFF_RETURN_IF_ERROR(ValidateIfName("VethConfig.host_ifname", cfg.host_ifname));
  SKIFF_RETURN_IF_ERROR(ValidateIfName("VethConfig.instance_ifname", cfg.instance_ifname));
  absl::StatusOr<uint32_t> host_ip = ParseIpv4(cfg.host_ip);
  if (!host_ip.ok()) return Annotate(host_ip.status(), "VethConfig.host_ip");
  absl::StatusOr<uint32_t> inst_ip = ParseIpv4(cfg.instance_ip);
  if (!inst_ip.ok()) return Annotate(inst_ip.status(), "VethConfig.instance_ip");
  if (cfg.prefix_len < 1 || cfg.prefix_len > 31) {
    return absl::InvalidArgumentError(
        absl::StrCat("VethConfig.prefix_len ", cfg.prefix_len, ": must be 1..31"));
  }
  const uint32_t mask = ~uint32_t{0} << (32 - cfg.prefix_len);
  if (*host_ip == *inst_ip || ((ntohl(*host_ip) ^ ntohl(*inst_ip)) & mask) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("VethConfig.instance_ip ", cfg.instance_ip,
                                                   ": must differ from host_ip ", cfg.host_ip,
                                                   " within one /", cfg.prefix_len));
  }
  if (netns_pid <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("netns_pid ", netns_pid, ": must be > 0"));
  }

  UniqueFd fd;
  if (int err = OpenRtnl(&fd)) return ErrnoStatus(err, "socket(AF_NETLINK, NETLINK_ROUTE)");
  const std::string what =
      absl::StrCat("veth ", cfg.host_ifname, " <-> ", cfg.instance_ifname, " in pid ", netns_pid);
  if (int err =
          CreateVeth(fd.get(), cfg.host_ifname.c_str(), cfg.instance_ifname.c_str(), netns_pid)) {
    return ErrnoStatus(err, "RTM_NEWLINK(", what, ")");
  }
  bool keep = false;
  struct Rollback {
    int fd;
    const char* name;
    bool* keep;
    ~Rollback() {
      if (!*keep) DeleteLinkByName(fd, name);
    }
  } rollback{fd.get(), cfg.host_ifname.c_str(), &keep};

  int index = 0;
  if (int err = GetIfIndex(fd.get(), cfg.host_ifname.c_str(), &index)) {
    return LinkError(err, absl::StrCat("RTM_GETLINK(", cfg.host_ifname, ")"));
  }
  if (int err = AddAddress(fd.get(), index, *host_ip, cfg.prefix_len)) {
    return ErrnoStatus(err, "RTM_NEWADDR(", cfg.host_ifname, ", ", cfg.host_ip, "/", cfg.prefix_len,
                       ")");
  }
  if (int err = SetLinkUp(fd.get(), index)) {
    return ErrnoStatus(err, "RTM_NEWLINK(", cfg.host_ifname, " up)");
  }
  keep = true;
  return absl::OkStatus();
}

absl::Status AddressAndUp(const std::string& ifname, const std::string& ip, uint32_t prefix_len) {
  SKIFF_RETURN_IF_ERROR(ValidateIfName("ifname", ifname));
  absl::StatusOr<uint32_t> ip_be = ParseIpv4(ip);
  if (!ip_be.ok()) return Annotate(ip_be.status(), "ip");
  if (prefix_len < 1 || prefix_len > 32) {
    return absl::InvalidArgumentError(absl::StrCat("prefix_len ", prefix_len, ": must be 1..32"));
  }
  UniqueFd fd;
  if (int err = OpenRtnl(&fd)) return ErrnoStatus(err, "socket(AF_NETLINK, NETLINK_ROUTE)");
  int index = 0;
  if (int err = GetIfIndex(fd.get(), ifname.c_str(), &index)) {
    return LinkError(err, absl::StrCat("RTM_GETLINK(", ifname, ")"));
  }
  if (int err = AddAddress(fd.get(), index, *ip_be, prefix_len)) {
    return ErrnoStatus(err, "RTM_NEWADDR(", ifname, ", ", ip, "/", prefix_len, ")");
  }
  if (int err = SetLinkUp(fd.get(), index)) return ErrnoStatus(err, "RTM_NEWLINK(", ifname, " up)");
  return absl::OkStatus();
}

int ConfigureInstanceNetwork(const char* ifname, uint32_t instance_ip_be, uint32_t host_ip_be,
                             uint32_t prefix_len) {
  if (ifname == nullptr || ifname[0] == '\0' || strnlen(ifname, IFNAMSIZ) >= IFNAMSIZ ||
      prefix_len < 1 || prefix_len > 31) {
    return EINVAL;
  }
  UniqueFd fd;
  if (int err = OpenRtnl(&fd)) return err;
  int lo = 0, eth = 0;
  if (int err = GetIfIndex(fd.get(), "lo", &lo)) return err;
  if (int err = SetLinkUp(fd.get(), lo)) return err;
  if (int err = GetIfIndex(fd.get(), ifname, &eth)) return err;
  if (int err = AddAddress(fd.get(), eth, instance_ip_be, prefix_len)) return err;
  if (int err = SetLinkUp(fd.get(), eth)) return err;
  return AddDefaultRoute(fd.get(), eth, host_ip_be);
}

absl::Status DeleteLink(const std::string& ifname) {
  SKIFF_RETURN_IF_ERROR(ValidateIfName("ifname", ifname));
  UniqueFd fd;
  if (int err = OpenRtnl(&fd)) return ErrnoStatus(err, "socket(AF_NETLINK, NETLINK_ROUTE)");
  if (int err = DeleteLinkByName(fd.get(), ifname.c_str())) {
    return LinkError(err, absl::StrCat("RTM_DELLINK(", ifname, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> LinkExists(const std::string& ifname) {
  SKIFF_RETURN_IF_ERROR(ValidateIfName("ifname", ifname));
  UniqueFd fd;
  if (int err = OpenRtnl(&fd)) return ErrnoStatus(err, "socket(AF_NETLINK, NETLINK_ROUTE)");
  int index = 0;
  int err = GetIfIndex(fd.get(), ifname.c_str(), &index);
  if (err == 0) return true;
  if (err == ENODEV) return false;
  return ErrnoStatus(err, "RTM_GETLINK(", ifname, ")");
}

absl::StatusOr<std::vector<std::string>> ListLinks() {
  UniqueFd fd;
  if (int err = OpenRtnl(&fd)) return ErrnoStatus(err, "socket(AF_NETLINK, NETLINK_ROUTE)");
  NlRequest req(RTM_GETLINK, NLM_F_DUMP);
  req.hdr()->nlmsg_flags &= static_cast<uint16_t>(~NLM_F_ACK);
  auto* ifi = static_cast<ifinfomsg*>(req.Put(sizeof(ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  const uint32_t seq = 0x5c1f11;
  req.hdr()->nlmsg_seq = seq;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd.get(), req.hdr(), req.hdr()->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel),
             sizeof(kernel)) < 0) {
    return ErrnoStatus(errno, "sendto(RTM_GETLINK dump)");
  }
  std::vector<std::string> names;
  std::vector<char> buf(32768);
  for (;;) {
    ssize_t n = recv(fd.get(), buf.data(), buf.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "recv(RTM_GETLINK dump)");
    int len = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, len);
         h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_seq != seq) continue;
      if (h->nlmsg_type == NLMSG_DONE) return names;
      if (h->nlmsg_type == NLMSG_ERROR) {
        const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
        return ErrnoStatus(-e->error, "RTM_GETLINK dump");
      }
      if (h->nlmsg_type != RTM_NEWLINK) continue;
      auto* info = static_cast<ifinfomsg*>(NLMSG_DATA(h));
      int alen = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof(*info)));
      for (auto* a = IFLA_RTA(info); RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
        if (a->rta_type == IFLA_IFNAME) {
          names.emplace_back(static_cast<const char*>(RTA_DATA(a)),
                             strnlen(static_cast<const char*>(RTA_DATA(a)), RTA_PAYLOAD(a)));
        }
      }
    }
  }
}

}  // namespace skiff
