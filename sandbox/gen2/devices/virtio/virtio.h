#pragma once

// Constants of the virtio 1.2 specification that skiff's devices use, named as in the spec
// (OASIS virtio v1.2, sections 2 "Basic Facilities", 4.2 "Virtio Over MMIO" and 5 "Device
// Types"). Nothing here is specific to skiff; skiff's own choices (queue sizes, offered
// features) live with each device.

#include <cstdint>

namespace skiff::gen2::virtio {

// 5 Device Types: device ids.
inline constexpr uint32_t kDeviceIdNet = 1;
inline constexpr uint32_t kDeviceIdBlock = 2;
inline constexpr uint32_t kDeviceIdConsole = 3;

// 2.1 Device Status Field.
inline constexpr uint32_t kStatusAcknowledge = 1;
inline constexpr uint32_t kStatusDriver = 2;
inline constexpr uint32_t kStatusDriverOk = 4;
inline constexpr uint32_t kStatusFeaturesOk = 8;
inline constexpr uint32_t kStatusDeviceNeedsReset = 0x40;
inline constexpr uint32_t kStatusFailed = 0x80;

// 6 Reserved Feature Bits (bit numbers).
inline constexpr uint32_t kFRingIndirectDesc = 28;  // VIRTIO_RING_F_INDIRECT_DESC
inline constexpr uint32_t kFRingEventIdx = 29;      // VIRTIO_RING_F_EVENT_IDX
inline constexpr uint32_t kFVersion1 = 32;          // VIRTIO_F_VERSION_1
inline constexpr uint32_t kFAccessPlatform = 33;    // VIRTIO_F_ACCESS_PLATFORM
inline constexpr uint32_t kFRingPacked = 34;        // VIRTIO_F_RING_PACKED

inline constexpr uint64_t FeatureBit(uint32_t bit) { return uint64_t{1} << bit; }

// 2.7 Split Virtqueues: descriptor flags (struct virtq_desc.flags).
inline constexpr uint16_t kDescFNext = 1;      // VIRTQ_DESC_F_NEXT
inline constexpr uint16_t kDescFWrite = 2;     // VIRTQ_DESC_F_WRITE (device-writable)
inline constexpr uint16_t kDescFIndirect = 4;  // VIRTQ_DESC_F_INDIRECT

// struct virtq_avail.flags / struct virtq_used.flags.
inline constexpr uint16_t kAvailFNoInterrupt = 1;  // VIRTQ_AVAIL_F_NO_INTERRUPT
inline constexpr uint16_t kUsedFNoNotify = 1;      // VIRTQ_USED_F_NO_NOTIFY

// Sizes and alignments of the split virtqueue's parts (2.7 table "Virtqueue Part
// Alignment Size"), for a queue of `n` entries.
inline constexpr uint32_t kMaxQueueSize = 32768;
inline constexpr uint64_t kDescSize = 16;  // struct virtq_desc
inline constexpr uint64_t kDescAlign = 16;
inline constexpr uint64_t kAvailAlign = 2;
inline constexpr uint64_t kUsedAlign = 4;
inline constexpr uint64_t kUsedElemSize = 8;  // struct virtq_used_elem
inline constexpr uint64_t DescTableBytes(uint32_t n) { return kDescSize * n; }
// flags, idx, ring[n], used_event
inline constexpr uint64_t AvailRingBytes(uint32_t n) { return 6 + 2ull * n; }
// flags, idx, ring[n], avail_event
inline constexpr uint64_t UsedRingBytes(uint32_t n) { return 6 + kUsedElemSize * n; }

// 4.2.2 MMIO Device Register Layout (version 2, "modern").
namespace mmio {
inline constexpr uint32_t kMagicValue = 0x74726976;  // "virt"
inline constexpr uint32_t kVersion = 2;
inline constexpr uint64_t kRegMagicValue = 0x000;
inline constexpr uint64_t kRegVersion = 0x004;
inline constexpr uint64_t kRegDeviceId = 0x008;
inline constexpr uint64_t kRegVendorId = 0x00c;
inline constexpr uint64_t kRegDeviceFeatures = 0x010;
inline constexpr uint64_t kRegDeviceFeaturesSel = 0x014;
inline constexpr uint64_t kRegDriverFeatures = 0x020;
inline constexpr uint64_t kRegDriverFeaturesSel = 0x024;
inline constexpr uint64_t kRegQueueSel = 0x030;
inline constexpr uint64_t kRegQueueNumMax = 0x034;
inline constexpr uint64_t kRegQueueNum = 0x038;
inline constexpr uint64_t kRegQueueReady = 0x044;
inline constexpr uint64_t kRegQueueNotify = 0x050;
inline constexpr uint64_t kRegInterruptStatus = 0x060;
inline constexpr uint64_t kRegInterruptAck = 0x064;
inline constexpr uint64_t kRegStatus = 0x070;
inline constexpr uint64_t kRegQueueDescLow = 0x080;
inline constexpr uint64_t kRegQueueDescHigh = 0x084;
inline constexpr uint64_t kRegQueueDriverLow = 0x090;  // the available ring
inline constexpr uint64_t kRegQueueDriverHigh = 0x094;
inline constexpr uint64_t kRegQueueDeviceLow = 0x0a0;  // the used ring
inline constexpr uint64_t kRegQueueDeviceHigh = 0x0a4;
inline constexpr uint64_t kRegShmSel = 0x0ac;
inline constexpr uint64_t kRegShmLenLow = 0x0b0;
inline constexpr uint64_t kRegShmLenHigh = 0x0b4;
inline constexpr uint64_t kRegShmBaseLow = 0x0b8;
inline constexpr uint64_t kRegShmBaseHigh = 0x0bc;
inline constexpr uint64_t kRegQueueReset = 0x0c0;
inline constexpr uint64_t kRegConfigGeneration = 0x0fc;
inline constexpr uint64_t kConfigSpace = 0x100;

// InterruptStatus bits.
inline constexpr uint32_t kInterruptUsedBuffer = 1;
inline constexpr uint32_t kInterruptConfigChange = 2;
}  // namespace mmio

// 5.2 Block Device.
namespace blk {
inline constexpr uint32_t kFSizeMax = 1;  // VIRTIO_BLK_F_SIZE_MAX
inline constexpr uint32_t kFSegMax = 2;   // VIRTIO_BLK_F_SEG_MAX
inline constexpr uint32_t kFRo = 5;       // VIRTIO_BLK_F_RO
inline constexpr uint32_t kFBlkSize = 6;  // VIRTIO_BLK_F_BLK_SIZE
inline constexpr uint32_t kFFlush = 9;    // VIRTIO_BLK_F_FLUSH
inline constexpr uint32_t kTIn = 0;       // VIRTIO_BLK_T_IN
inline constexpr uint32_t kTOut = 1;      // VIRTIO_BLK_T_OUT
inline constexpr uint32_t kTFlush = 4;    // VIRTIO_BLK_T_FLUSH
inline constexpr uint32_t kTGetId = 8;    // VIRTIO_BLK_T_GET_ID
inline constexpr uint8_t kSOk = 0;        // VIRTIO_BLK_S_OK
inline constexpr uint8_t kSIoErr = 1;     // VIRTIO_BLK_S_IOERR
inline constexpr uint8_t kSUnsupp = 2;    // VIRTIO_BLK_S_UNSUPP
inline constexpr uint64_t kSectorSize = 512;
inline constexpr uint32_t kIdBytes = 20;  // VIRTIO_BLK_ID_BYTES
// struct virtio_blk_req's header: type, reserved, sector.
inline constexpr uint64_t kRequestHeaderSize = 16;
}  // namespace blk

// 5.1 Network Device.
namespace net {
inline constexpr uint32_t kFMac = 5;         // VIRTIO_NET_F_MAC
inline constexpr uint32_t kFMrgRxbuf = 15;   // VIRTIO_NET_F_MRG_RXBUF
inline constexpr uint32_t kFStatus = 16;     // VIRTIO_NET_F_STATUS
inline constexpr uint16_t kSLinkUp = 1;      // VIRTIO_NET_S_LINK_UP
inline constexpr uint64_t kHeaderSize = 12;  // struct virtio_net_hdr_v1 (VERSION_1)
inline constexpr uint32_t kRxQueue = 0;      // receiveq1
inline constexpr uint32_t kTxQueue = 1;      // transmitq1
}  // namespace net

// 5.3 Console Device (no VIRTIO_CONSOLE_F_MULTIPORT: one port, two queues).
namespace console {
inline constexpr uint32_t kReceiveQueue = 0;   // receiveq (port 0): host → guest
inline constexpr uint32_t kTransmitQueue = 1;  // transmitq (port 0): guest → host
}  // namespace console

}  // namespace skiff::gen2::virtio
