/* Mode `garbage`: a hostile driver. On a virtio-blk device (layout slot TG_SLOT_SCRATCH,
 * else the first block device) it posts malformed descriptor chains, one per case, and
 * checks that the device then reports DEVICE_NEEDS_RESET (status bit 0x40) instead of
 * completing the request or taking the VMM down. The device is reset between cases and
 * left broken after the last one. */
#include "virtio.h"

#define BROKEN_TIMEOUT_MS 5000
#define OUTSIDE_RAM 0x10000000000ull /* 1 TiB: no test VM has RAM there */

static TG_NOINIT struct virtq_rings rings;
static TG_NOINIT uint8_t header[16];
static TG_NOINIT uint8_t sector[512];
static volatile uint8_t status_byte;

enum garbage_case { kHeadOutOfRange, kNextOutOfRange, kLoop, kOutsideRam, kCases };
static const char* const kCaseNames[kCases] = {"head-out-of-range", "next-out-of-range", "loop",
                                               "outside-ram"};

static void set_desc(struct virtq* q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                     uint16_t next) {
  q->rings->desc[i].addr = addr;
  q->rings->desc[i].len = len;
  q->rings->desc[i].flags = flags;
  q->rings->desc[i].next = next;
}

/* Writes the case's descriptors and returns the head index to publish. */
static uint16_t build_case(struct virtq* q, enum garbage_case c) {
  uint64_t hdr = (uintptr_t)header;
  uint64_t data = (uintptr_t)sector;
  uint64_t st = (uintptr_t)&status_byte;
  memset(header, 0, sizeof(header));  // VIRTIO_BLK_T_IN, sector 0
  switch (c) {
    case kHeadOutOfRange:  // a valid chain, but the avail ring names a descriptor past the end
      set_desc(q, 0, hdr, sizeof(header), VIRTQ_DESC_F_NEXT, 1);
      set_desc(q, 1, st, 1, VIRTQ_DESC_F_WRITE, 0);
      return (uint16_t)(q->size + 3);
    case kNextOutOfRange:
      set_desc(q, 0, hdr, sizeof(header), VIRTQ_DESC_F_NEXT, (uint16_t)(q->size + 5));
      return 0;
    case kLoop:  // 0 -> 1 -> 0 -> ...
      set_desc(q, 0, hdr, sizeof(header), VIRTQ_DESC_F_NEXT, 1);
      set_desc(q, 1, data, sizeof(sector), VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 0);
      return 0;
    case kOutsideRam:  // header and data buffer both outside RAM (QEMU bounces one of them)
      set_desc(q, 0, OUTSIDE_RAM, sizeof(header), VIRTQ_DESC_F_NEXT, 1);
      set_desc(q, 1, OUTSIDE_RAM + 0x1000, sizeof(sector), VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE,
               2);
      set_desc(q, 2, st, 1, VIRTQ_DESC_F_WRITE, 0);
      return 0;
    case kCases:
      break;
  }
  return 0;
}

static bool wait_broken(struct virtio_dev* dev, uint32_t* status) {
  uint64_t start = rdtsc();
  for (;;) {
    *status = virtio_status(dev);
    if (*status & VIRTIO_STATUS_NEEDS_RESET) return true;
    if (rdtsc() - start > BROKEN_TIMEOUT_MS * TG_TICKS_PER_MS) return false;
    tg_delay_ticks(TG_TICKS_PER_MS);
  }
}

void garbage_run(const char* cmdline, struct virtio_dev* devs, uint32_t n) {
  (void)cmdline;
  struct virtio_dev* dev = virtio_pick(
      devs, n, VIRTIO_ID_BLOCK, TG_VIRTIO_MMIO_BASE + TG_SLOT_SCRATCH * TG_VIRTIO_MMIO_SLOT_SIZE);
  if (dev == NULL) {
    tg_printf("tg: error garbage no virtio-blk device\n");
    return;
  }
  int broken = 0;
  for (int c = 0; c < kCases; c++) {
    struct virtq q;
    if (!virtio_begin_init(dev, 0) || !virtio_setup_queue(dev, &q, 0, &rings)) return;
    virtio_driver_ok(dev);
    virtq_publish(dev, &q, build_case(&q, (enum garbage_case)c));
    uint32_t status;
    if (wait_broken(dev, &status)) {
      tg_printf("tg: garbage %s device-broken status=0x%x\n", kCaseNames[c], status);
      broken++;
    } else {
      tg_printf("tg: error garbage %s: device not broken (status 0x%x, used idx %u)\n",
                kCaseNames[c], status, ((volatile struct virtq_used*)&rings.used)->idx);
    }
  }
  tg_printf("tg: garbage 0x%llx %d/%d cases broke the device\n", (unsigned long long)dev->base,
            broken, kCases);
  if (broken == kCases) tg_printf("tg: garbage device-broken\n");
}
