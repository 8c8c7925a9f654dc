#pragma once

// The host end of a guest's virtio-net: a tap interface.
//
// skiff opens taps with IFF_TAP | IFF_NO_PI and without IFF_VNET_HDR: each read or write is
// exactly one Ethernet frame. virtio-net offers no offloads, so the guest's
// virtio_net_hdr carries nothing the kernel would need; the device strips it on transmit and
// writes a zeroed one on receive (net.h).

#include <string>

#include "absl/status/statusor.h"
#include "sandbox/common/unique_fd.h"

namespace skiff::gen2::virtio {

// Opens /dev/net/tun and attaches a tap named `name` (at most 15 bytes; created in the
// calling thread's network namespace if it does not exist). The fd is non-blocking and
// close-on-exec; a tap that this call created disappears when the fd is closed.
absl::StatusOr<UniqueFd> OpenTap(const std::string& name);

}  // namespace skiff::gen2::virtio
