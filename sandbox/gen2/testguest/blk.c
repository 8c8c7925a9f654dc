/* Mode `blk`: virtio-blk. Reads sectors 0..N-1 of the root disk and prints their FNV-1a
 * checksum; writes a known pattern to sectors 0..N-1 of the scratch disk, reads it back
 * and compares.
 *
 * Roles: the root disk is the block device in layout slot TG_SLOT_BLOCK, else the first
 * read-only one, else the first one; the scratch disk is the block device in slot
 * TG_SLOT_SCRATCH, else the first writable one that is not the root. */
#include "virtio.h"

#define VIRTIO_BLK_F_RO (1ull << 5)
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_S_OK 0
#define BLK_CONFIG_CAPACITY 0 /* le64, 512-byte sectors */
#define SECTOR_SIZE 512
#define MAX_SECTORS 8
#define REQUEST_TIMEOUT_MS 10000

struct blk_req_header {
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};

struct blk {
  struct virtio_dev* dev;
  struct virtq q;
  uint64_t capacity;
  bool read_only;
};

static TG_NOINIT struct virtq_rings rings[2];
static TG_NOINIT uint8_t data[MAX_SECTORS * SECTOR_SIZE] __attribute__((aligned(4096)));
static TG_NOINIT uint8_t readback[MAX_SECTORS * SECTOR_SIZE] __attribute__((aligned(4096)));
static struct blk_req_header header;
static volatile uint8_t status;

static bool blk_open(struct blk* b, struct virtio_dev* dev, struct virtq_rings* r) {
  b->dev = dev;
  if (!virtio_begin_init(dev, VIRTIO_BLK_F_RO)) return false;
  if (!virtio_setup_queue(dev, &b->q, 0, r)) return false;
  virtio_driver_ok(dev);
  b->capacity = virtio_config32(dev, BLK_CONFIG_CAPACITY) |
                (uint64_t)virtio_config32(dev, BLK_CONFIG_CAPACITY + 4) << 32;
  b->read_only = (dev->driver_features & VIRTIO_BLK_F_RO) != 0;
  return true;
}

static bool blk_io(struct blk* b, uint32_t type, uint64_t sector, void* buf, uint32_t sectors) {
  header.type = type;
  header.reserved = 0;
  header.sector = sector;
  status = 0xff;
  struct virtq_buf bufs[3] = {
      {&header, sizeof(header), false},
      {buf, sectors * SECTOR_SIZE, type == VIRTIO_BLK_T_IN},
      {&status, 1, true},
  };
  virtq_submit(b->dev, &b->q, bufs, 3);
  if (!virtq_wait(&b->q, REQUEST_TIMEOUT_MS, NULL, NULL)) {
    tg_printf("tg: error blk 0x%llx %s sector %llu: no completion\n",
              (unsigned long long)b->dev->base, type == VIRTIO_BLK_T_IN ? "read" : "write",
              (unsigned long long)sector);
    return false;
  }
  if (status != VIRTIO_BLK_S_OK) {
    tg_printf("tg: error blk 0x%llx %s sector %llu: status %u\n", (unsigned long long)b->dev->base,
              type == VIRTIO_BLK_T_IN ? "read" : "write", (unsigned long long)sector, status);
    return false;
  }
  return true;
}

static uint32_t fnv1a32(const uint8_t* p, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 16777619u;
  }
  return h;
}

/* The scratch pattern: byte at disk offset o is (7*o + o/512) mod 256, xor 0x5a. */
static uint8_t pattern_byte(uint64_t o) { return (uint8_t)((7 * o + o / SECTOR_SIZE) ^ 0x5a); }

static struct virtio_dev* pick_root(struct virtio_dev* devs, uint32_t n) {
  uint64_t slot = TG_VIRTIO_MMIO_BASE + TG_SLOT_BLOCK * TG_VIRTIO_MMIO_SLOT_SIZE;
  struct virtio_dev* first = NULL;
  for (uint32_t i = 0; i < n; i++) {
    if (devs[i].device_id != VIRTIO_ID_BLOCK) continue;
    if (devs[i].base == slot) return &devs[i];
    if (first == NULL) first = &devs[i];
  }
  for (uint32_t i = 0; i < n; i++) {
    if (devs[i].device_id != VIRTIO_ID_BLOCK) continue;
    if (virtio_begin_init(&devs[i], VIRTIO_BLK_F_RO) &&
        (devs[i].driver_features & VIRTIO_BLK_F_RO) != 0) {
      virtio_reset(&devs[i]);
      return &devs[i];
    }
    virtio_reset(&devs[i]);
  }
  return first;
}

static struct virtio_dev* pick_scratch(struct virtio_dev* devs, uint32_t n,
                                       const struct virtio_dev* root) {
  uint64_t slot = TG_VIRTIO_MMIO_BASE + TG_SLOT_SCRATCH * TG_VIRTIO_MMIO_SLOT_SIZE;
  for (uint32_t i = 0; i < n; i++) {
    if (devs[i].device_id == VIRTIO_ID_BLOCK && devs[i].base == slot) return &devs[i];
  }
  for (uint32_t i = 0; i < n; i++) {
    if (devs[i].device_id != VIRTIO_ID_BLOCK || &devs[i] == root) continue;
    bool writable = virtio_begin_init(&devs[i], VIRTIO_BLK_F_RO) &&
                    (devs[i].driver_features & VIRTIO_BLK_F_RO) == 0;
    virtio_reset(&devs[i]);
    if (writable) return &devs[i];
  }
  return NULL;
}

static void run_root(struct virtio_dev* dev, uint32_t sectors) {
  struct blk b;
  if (!blk_open(&b, dev, &rings[0])) return;
  uint32_t n = sectors;
  if (n > b.capacity) n = (uint32_t)b.capacity;
  if (n > 0 && !blk_io(&b, VIRTIO_BLK_T_IN, 0, data, n)) return;
  tg_printf("tg: blk root 0x%llx capacity=%llu ro=%d read=%u fnv1a=%08x\n",
            (unsigned long long)dev->base, (unsigned long long)b.capacity, b.read_only ? 1 : 0, n,
            fnv1a32(data, (size_t)n * SECTOR_SIZE));
}

static void run_scratch(struct virtio_dev* dev, uint32_t sectors) {
  struct blk b;
  if (!blk_open(&b, dev, &rings[1])) return;
  if (b.capacity < sectors) {
    tg_printf("tg: error blk scratch 0x%llx has %llu sectors, needs %u\n",
              (unsigned long long)dev->base, (unsigned long long)b.capacity, sectors);
    return;
  }
  size_t bytes = (size_t)sectors * SECTOR_SIZE;
  for (size_t o = 0; o < bytes; o++) data[o] = pattern_byte(o);
  memset(readback, 0, bytes);
  if (!blk_io(&b, VIRTIO_BLK_T_OUT, 0, data, sectors)) return;
  if (!blk_io(&b, VIRTIO_BLK_T_IN, 0, readback, sectors)) return;
  bool same = memcmp(data, readback, bytes) == 0;
  tg_printf("tg: blk scratch 0x%llx capacity=%llu wrote=%u readback=%s fnv1a=%08x\n",
            (unsigned long long)dev->base, (unsigned long long)b.capacity, sectors,
            same ? "ok" : "mismatch", fnv1a32(readback, bytes));
  if (!same) tg_printf("tg: error blk scratch readback differs\n");
}

void blk_run(const char* cmdline, struct virtio_dev* devs, uint32_t n) {
  uint32_t sectors = (uint32_t)cmdline_number(cmdline, "testguest.blk_sectors", MAX_SECTORS);
  if (sectors == 0 || sectors > MAX_SECTORS) sectors = MAX_SECTORS;
  struct virtio_dev* root = pick_root(devs, n);
  if (root == NULL) {
    tg_printf("tg: error blk no virtio-blk device\n");
    return;
  }
  run_root(root, sectors);
  struct virtio_dev* scratch = pick_scratch(devs, n, root);
  if (scratch == NULL) {
    tg_printf("tg: blk scratch none\n");
    return;
  }
  run_scratch(scratch, sectors);
}
