#include "sandbox/gen2/guest/init/network.h"

#include <net/if.h>
#include <net/if_arp.h>
#include <net/route.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cstring>

#include "sandbox/common/unique_fd.h"

namespace skiff::gen2::init {

namespace {

ifreq Request(const char* ifname) {
  ifreq ifr = {};
  std::strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
  return ifr;
}

sockaddr_in Inet(const std::array<uint8_t, 4>& a) {
  sockaddr_in sin = {};
  sin.sin_family = AF_INET;
  std::memcpy(&sin.sin_addr.s_addr, a.data(), 4);
  return sin;
}

std::string Dotted(const std::array<uint8_t, 4>& a) {
  return std::to_string(a[0]) + "." + std::to_string(a[1]) + "." + std::to_string(a[2]) + "." +
         std::to_string(a[3]);
}

StepResult Up(int s, const char* ifname) {
  ifreq ifr = Request(ifname);
  if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0)
    return StepFail(errno, std::string("SIOCGIFFLAGS ") + ifname);
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0)
    return StepFail(errno, std::string("SIOCSIFFLAGS ") + ifname);
  return StepOk();
}

StepResult SetMac(int s, const std::array<uint8_t, 6>& mac) {
  if (mac == std::array<uint8_t, 6>{}) return StepOk();
  ifreq ifr = Request(kGuestInterface);
  if (ioctl(s, SIOCGIFHWADDR, &ifr) != 0) return StepFail(errno, "SIOCGIFHWADDR eth0");
  if (std::memcmp(ifr.ifr_hwaddr.sa_data, mac.data(), 6) == 0) return StepOk();
  ifr = Request(kGuestInterface);
  ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
  std::memcpy(ifr.ifr_hwaddr.sa_data, mac.data(), 6);
  if (ioctl(s, SIOCSIFHWADDR, &ifr) != 0) return StepFail(errno, "SIOCSIFHWADDR eth0");
  return StepOk();
}

StepResult SetAddress(int s, const control::NetworkConfig& n) {
  ifreq ifr = Request(kGuestInterface);
  sockaddr_in addr = Inet(n.address);
  std::memcpy(&ifr.ifr_addr, &addr, sizeof(addr));
  if (ioctl(s, SIOCSIFADDR, &ifr) != 0) {
    return StepFail(errno, "SIOCSIFADDR eth0 " + Dotted(n.address));
  }
  uint32_t mask = n.prefix_length == 32 ? ~0u : ~(~0u >> n.prefix_length);
  std::array<uint8_t, 4> m = {static_cast<uint8_t>(mask >> 24), static_cast<uint8_t>(mask >> 16),
                              static_cast<uint8_t>(mask >> 8), static_cast<uint8_t>(mask)};
  ifr = Request(kGuestInterface);
  sockaddr_in netmask = Inet(m);
  std::memcpy(&ifr.ifr_netmask, &netmask, sizeof(netmask));
  if (ioctl(s, SIOCSIFNETMASK, &ifr) != 0)
    return StepFail(errno, "SIOCSIFNETMASK eth0 " + Dotted(m));
  return StepOk();
}

StepResult AddDefaultRoute(int s, const std::array<uint8_t, 4>& gateway) {
  if (gateway == std::array<uint8_t, 4>{}) return StepOk();
  rtentry rt = {};
  sockaddr_in any = Inet({0, 0, 0, 0});
  sockaddr_in gw = Inet(gateway);
  std::memcpy(&rt.rt_dst, &any, sizeof(any));
  std::memcpy(&rt.rt_genmask, &any, sizeof(any));
  std::memcpy(&rt.rt_gateway, &gw, sizeof(gw));
  rt.rt_flags = RTF_UP | RTF_GATEWAY;
  char dev[IFNAMSIZ];
  std::strncpy(dev, kGuestInterface, IFNAMSIZ - 1);
  dev[IFNAMSIZ - 1] = '\0';
  rt.rt_dev = dev;
  if (ioctl(s, SIOCADDRT, &rt) != 0)
    return StepFail(errno, "SIOCADDRT default via " + Dotted(gateway));
  return StepOk();
}

}  // namespace

StepResult ConfigureNetwork(const control::NetworkConfig& network) {
  UniqueFd s(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s) return StepFail(errno, "socket(AF_INET)");
  if (StepResult r = Up(s.get(), "lo"); !r.ok()) return r;
  if (!network.enabled) return StepOk();
  if (StepResult r = SetMac(s.get(), network.mac); !r.ok()) return r;
  if (StepResult r = SetAddress(s.get(), network); !r.ok()) return r;
  if (StepResult r = Up(s.get(), kGuestInterface); !r.ok()) return r;
  return AddDefaultRoute(s.get(), network.gateway);
}

}  // namespace skiff::gen2::init
