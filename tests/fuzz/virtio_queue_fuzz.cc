// libFuzzer target: a hostile guest driving one virtio device (blk, net or console) through
// the virtio-mmio transport. The input is the guest: its memory, its queue configuration and
// a sequence of actions (notifications, memory changes between them, resets, register and
// config accesses, host-side traffic). Whatever it does, the VMM must not crash, read or write
// outside guest memory (ASan), or leave the transport in an impossible state.
//
// Input layout (little-endian):
//   [0]      device: 0 blk, 1 net, 2 console (mod 3)
//   [1]      bit 0: accept RING_INDIRECT_DESC; bit 1: refuse VERSION_1; bit 2: accept
//            RING_EVENT_IDX
//   [2], [3] queue 0 / queue 1 size: < 0x80 → 1 << (v % 9), else v itself (not a power of 2)
//   [4..15]  six u16 offsets from kGuestBase: desc, avail, used of queue 0, then of queue 1
//   [16..17] u16 n: the next n bytes are the start of guest memory (the rest is zero)
//   [18..23] reserved
//   then n bytes of guest memory, then 4-byte actions {op, a, b, c}:
//     0 notify queue a%3     1 guest memory[(a|b<<8) % size] = c    2 reset and re-initialize
//     3 read config          4 read+ack InterruptStatus              5 register write
//     6 run the device loop  7 host sends c+1 bytes                  8 host drains its socket

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "sandbox/gen2/devices/event_loop.h"
#include "sandbox/gen2/devices/virtio/blk.h"
#include "sandbox/gen2/devices/virtio/console.h"
#include "sandbox/gen2/devices/virtio/mmio_transport.h"
#include "sandbox/gen2/devices/virtio/net.h"
#include "sandbox/gen2/devices/virtio/virtio.h"
#include "tests/unit/gen2_virtio/virtio_test_driver.h"

namespace {

using namespace skiff::gen2;          // NOLINT
using namespace skiff::gen2::virtio;  // NOLINT
using ::skiff::UniqueFd;

constexpr uint64_t kGuestBase = 0x10000;
constexpr size_t kGuestSize = 32 * 1024;  // u16 offsets reach past its end
constexpr size_t kHeaderSize = 24;
constexpr size_t kMaxActions = 256;

uint16_t U16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

uint16_t QueueSize(uint8_t code) { return code < 0x80 ? uint16_t{1} << (code % 9) : code; }

// Crashes on a broken invariant (the fuzzer reports it).
void Check(bool ok) {
  if (!ok) __builtin_trap();
}

void DrainHost(int fd) {
  char buf[4096];
  while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool quiet = [] {
    spdlog::set_level(spdlog::level::off);
    return true;
  }();
  (void)quiet;
  if (size < kHeaderSize) return 0;

  std::vector<uint8_t> ram(kGuestSize);
  const size_t image = std::min<size_t>({U16(data + 16), size - kHeaderSize, kGuestSize});
  std::memcpy(ram.data(), data + kHeaderSize, image);
  const GuestMemory memory = GuestMemory::FromBuffer(kGuestBase, ram);
  const uint8_t* actions = data + kHeaderSize + image;
  const size_t action_count = std::min((size - kHeaderSize - image) / 4, kMaxActions);

  auto loop = EventLoop::Create();
  if (!loop.ok()) return 0;
  UniqueFd host;
  std::shared_ptr<VirtioDevice> device;
  switch (data[0] % 3) {
    case 0: {
      UniqueFd disk(memfd_create("fuzz-disk", MFD_CLOEXEC));
      if (!disk || ftruncate(disk.get(), 16 * 512) != 0) return 0;
      auto blk = VirtioBlk::Create(std::move(disk), false, "fuzz");
      if (!blk.ok()) return 0;
      device = *blk;
      break;
    }
    case 1:
    case 2: {
      const bool net = data[0] % 3 == 1;
      int sv[2];
      if (socketpair(AF_UNIX, (net ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC | SOCK_NONBLOCK, 0,
                     sv) != 0) {
        return 0;
      }
      host.Reset(sv[0]);
      UniqueFd dev(sv[1]);
      if (net) {
        auto n = VirtioNet::Create(std::move(dev), {2, 0, 0, 0, 0, 1}, loop->get());
        if (!n.ok()) return 0;
        device = *n;
      } else {
        auto c = VirtioConsole::Create(std::move(dev), loop->get(), [] {});
        if (!c.ok()) return 0;
        device = *c;
      }
      break;
    }
  }

  testing::CountingInterrupt irq;
  {
    MmioTransport transport(memory, device, &irq);
    testing::MmioDriver driver(transport);
    std::vector<QueueConfig> queues;
    for (size_t q = 0; q < device->queue_max_sizes().size(); ++q) {
      const uint8_t* off = data + 4 + 6 * q;
      queues.push_back({QueueSize(data[2 + q]), true, kGuestBase + U16(off),
                        kGuestBase + U16(off + 2), kGuestBase + U16(off + 4)});
    }
    uint64_t wanted = FeatureBit(kFVersion1) | FeatureBit(blk::kFFlush) | FeatureBit(net::kFMac) |
                      FeatureBit(net::kFStatus);
    if (data[1] & 1) wanted |= FeatureBit(kFRingIndirectDesc);
    if (data[1] & 2) wanted &= ~FeatureBit(kFVersion1);
    if (data[1] & 4) wanted |= FeatureBit(kFRingEventIdx);
    driver.Init(wanted, queues).IgnoreError();

    for (size_t i = 0; i < action_count; ++i) {
      const uint8_t* a = actions + 4 * i;
      switch (a[0] % 9) {
        case 0:
          driver.Notify(a[1] % 3);
          break;
        case 1:
          ram[(a[1] | (a[2] << 8)) % kGuestSize] = a[3];
          break;
        case 2:
          driver.Init(wanted, queues).IgnoreError();
          break;
        case 3: {
          uint8_t buf[8];
          transport.Read(mmio::kConfigSpace + a[1] % 64, std::span<uint8_t>(buf, a[2] % 8 + 1));
          break;
        }
        case 4:
          driver.AckInterrupts();
          break;
        case 5:
          driver.Write32((a[1] * 4) & 0xff, static_cast<uint32_t>(a[3] | (a[2] << 8)));
          break;
        case 6:
          (*loop)->RunOnce(0).IgnoreError();
          break;
        case 7:
          if (host) {
            uint8_t buf[256];
            std::memset(buf, a[1], sizeof(buf));
            (void)!send(host.get(), buf, a[3] + 1u, MSG_DONTWAIT | MSG_NOSIGNAL);
          }
          break;
        case 8:
          if (host) DrainHost(host.get());
          break;
      }
      // Invariants the driver can observe.
      const uint32_t status = driver.Status();
      Check(transport.broken() == ((status & kStatusDeviceNeedsReset) != 0));
      Check((status & kStatusDriverOk) == 0 || (status & kStatusFeaturesOk) != 0);
      Check((driver.Read32(mmio::kRegInterruptStatus) & ~3u) == 0);
    }
  }
  // The transport is gone (it reset the device); the device goes before the loop.
  device.reset();
  return 0;
}
