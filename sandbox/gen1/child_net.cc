// Network setup inside the instance's netns (runs in the init after the parent moved
// the veth peer in). Only lo when the instance has no veth.

#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "sandbox/common/net.h"
#include "sandbox/common/unique_fd.h"
#include "sandbox/gen1/child_steps.h"

namespace skiff::gen1 {

namespace {

int LoopbackUp() {
  UniqueFd sock(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) return errno;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  memcpy(ifr.ifr_name, "lo", 3);
  if (ioctl(sock.get(), SIOCGIFFLAGS, &ifr) != 0) return errno;
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(sock.get(), SIOCSIFFLAGS, &ifr) != 0) return errno;
  return 0;
}

}  // namespace

ChildError ConfigureNetwork(const ChildContext& ctx) {
  int err = ctx.has_veth ? ConfigureInstanceNetwork(ctx.ifname, ctx.instance_ip_be, ctx.host_ip_be,
                                                    ctx.prefix_len)
                         : LoopbackUp();
  if (err != 0) return ChildFail(ChildStep::kConfigureNetwork, err);
  return ChildOk();
}

}  // namespace skiff::gen1
