/* The virtio-mmio transport and split virtqueues (see virtio.h). */
#include "virtio.h"

/* 4.2.2 MMIO Device Register Layout. */
#define MMIO_MAGIC_VALUE 0x000
#define MMIO_VERSION 0x004
#define MMIO_DEVICE_ID 0x008
#define MMIO_DEVICE_FEATURES 0x010
#define MMIO_DEVICE_FEATURES_SEL 0x014
#define MMIO_DRIVER_FEATURES 0x020
#define MMIO_DRIVER_FEATURES_SEL 0x024
#define MMIO_QUEUE_SEL 0x030
#define MMIO_QUEUE_NUM_MAX 0x034
#define MMIO_QUEUE_NUM 0x038
#define MMIO_QUEUE_READY 0x044
#define MMIO_QUEUE_NOTIFY 0x050
#define MMIO_STATUS 0x070
#define MMIO_QUEUE_DESC_LOW 0x080
#define MMIO_QUEUE_DESC_HIGH 0x084
#define MMIO_QUEUE_DRIVER_LOW 0x090
#define MMIO_QUEUE_DRIVER_HIGH 0x094
#define MMIO_QUEUE_DEVICE_LOW 0x0a0
#define MMIO_QUEUE_DEVICE_HIGH 0x0a4
#define MMIO_CONFIG 0x100
#define MMIO_MAGIC 0x74726976 /* "virt" */

static uint32_t reg(const struct virtio_dev* dev, uint32_t off) {
  return mmio_read32(dev->base + off);
}
static void set_reg(struct virtio_dev* dev, uint32_t off, uint32_t v) {
  mmio_write32(dev->base + off, v);
}

uint32_t virtio_discover(const char* cmdline, struct virtio_dev* out, uint32_t max) {
  struct tg_mmio_device found[16];
  uint32_t n = cmdline_virtio_devices(cmdline, found, 16);
  uint32_t count = 0;
  for (uint32_t i = 0; i < n && count < max; i++) {
    struct virtio_dev d = {.base = found[i].base, .irq = found[i].irq};
    uint32_t magic = reg(&d, MMIO_MAGIC_VALUE);
    uint32_t version = reg(&d, MMIO_VERSION);
    d.device_id = reg(&d, MMIO_DEVICE_ID);
    if (magic != MMIO_MAGIC || version != 2 || d.device_id == 0) {
      tg_printf("tg: virtio 0x%llx magic=0x%x version=%u id=%u skipped\n",
                (unsigned long long)d.base, magic, version, d.device_id);
      continue;
    }
    tg_printf("tg: virtio 0x%llx irq=%u id=%u\n", (unsigned long long)d.base, d.irq, d.device_id);
    out[count++] = d;
  }
  return count;
}

struct virtio_dev* virtio_pick(struct virtio_dev* devs, uint32_t n, uint32_t device_id,
                               uint64_t prefer_base) {
  struct virtio_dev* first = NULL;
  for (uint32_t i = 0; i < n; i++) {
    if (devs[i].device_id != device_id) continue;
    if (devs[i].base == prefer_base) return &devs[i];
    if (first == NULL) first = &devs[i];
  }
  return first;
}

uint32_t virtio_status(const struct virtio_dev* dev) { return reg(dev, MMIO_STATUS); }

void virtio_reset(struct virtio_dev* dev) {
  set_reg(dev, MMIO_STATUS, 0);
  // 4.2.3.1: the driver waits until the status reads back 0.
  for (int i = 0; i < 1000 && reg(dev, MMIO_STATUS) != 0; i++) cpu_relax();
}

bool virtio_begin_init(struct virtio_dev* dev, uint64_t wanted_features) {
  virtio_reset(dev);
  set_reg(dev, MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
  set_reg(dev, MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
  set_reg(dev, MMIO_DEVICE_FEATURES_SEL, 0);
  uint64_t features = reg(dev, MMIO_DEVICE_FEATURES);
  set_reg(dev, MMIO_DEVICE_FEATURES_SEL, 1);
  features |= (uint64_t)reg(dev, MMIO_DEVICE_FEATURES) << 32;
  dev->device_features = features;
  if ((features & VIRTIO_F_VERSION_1) == 0) {
    tg_printf("tg: error virtio 0x%llx does not offer VERSION_1\n", (unsigned long long)dev->base);
    return false;
  }
  dev->driver_features = (wanted_features & features) | VIRTIO_F_VERSION_1;
  set_reg(dev, MMIO_DRIVER_FEATURES_SEL, 0);
  set_reg(dev, MMIO_DRIVER_FEATURES, (uint32_t)dev->driver_features);
  set_reg(dev, MMIO_DRIVER_FEATURES_SEL, 1);
  set_reg(dev, MMIO_DRIVER_FEATURES, (uint32_t)(dev->driver_features >> 32));
  uint32_t status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK;
  set_reg(dev, MMIO_STATUS, status);
  if ((reg(dev, MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK) == 0) {
    tg_printf("tg: error virtio 0x%llx refused features 0x%llx\n", (unsigned long long)dev->base,
              (unsigned long long)dev->driver_features);
    set_reg(dev, MMIO_STATUS, status | VIRTIO_STATUS_FAILED);
    return false;
  }
  return true;
}

bool virtio_setup_queue(struct virtio_dev* dev, struct virtq* q, uint16_t index,
                        struct virtq_rings* rings) {
  set_reg(dev, MMIO_QUEUE_SEL, index);
  uint32_t max = reg(dev, MMIO_QUEUE_NUM_MAX);
  if (max == 0 || reg(dev, MMIO_QUEUE_READY) != 0) {
    tg_printf("tg: error virtio 0x%llx queue %u unavailable (max %u)\n",
              (unsigned long long)dev->base, index, max);
    return false;
  }
  memset(rings, 0, sizeof(*rings));
  q->index = index;
  q->size = max < TG_QUEUE_SIZE ? (uint16_t)max : TG_QUEUE_SIZE;
  q->next_desc = 0;
  q->avail_idx = 0;
  q->last_used = 0;
  q->rings = rings;
  uint64_t desc = (uintptr_t)rings->desc;
  uint64_t avail = (uintptr_t)&rings->avail;
  uint64_t used = (uintptr_t)&rings->used;
  set_reg(dev, MMIO_QUEUE_NUM, q->size);
  set_reg(dev, MMIO_QUEUE_DESC_LOW, (uint32_t)desc);
  set_reg(dev, MMIO_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
  set_reg(dev, MMIO_QUEUE_DRIVER_LOW, (uint32_t)avail);
  set_reg(dev, MMIO_QUEUE_DRIVER_HIGH, (uint32_t)(avail >> 32));
  set_reg(dev, MMIO_QUEUE_DEVICE_LOW, (uint32_t)used);
  set_reg(dev, MMIO_QUEUE_DEVICE_HIGH, (uint32_t)(used >> 32));
  set_reg(dev, MMIO_QUEUE_READY, 1);
  return true;
}

void virtio_driver_ok(struct virtio_dev* dev) {
  set_reg(dev, MMIO_STATUS, reg(dev, MMIO_STATUS) | VIRTIO_STATUS_DRIVER_OK);
}

uint8_t virtio_config8(const struct virtio_dev* dev, uint32_t offset) {
  return mmio_read8(dev->base + MMIO_CONFIG + offset);
}

uint32_t virtio_config32(const struct virtio_dev* dev, uint32_t offset) {
  return reg(dev, MMIO_CONFIG + offset);
}

void virtq_publish(struct virtio_dev* dev, struct virtq* q, uint16_t head) {
  struct virtq_avail* avail = &q->rings->avail;
  avail->ring[q->avail_idx % q->size] = head;
  compiler_barrier();  // x86 keeps stores in order: the ring entry before the index
  q->avail_idx++;
  *(volatile uint16_t*)&avail->idx = q->avail_idx;
  compiler_barrier();
  set_reg(dev, MMIO_QUEUE_NOTIFY, q->index);
}

uint16_t virtq_submit(struct virtio_dev* dev, struct virtq* q, const struct virtq_buf* bufs,
                      uint32_t n) {
  uint16_t head = q->next_desc;
  for (uint32_t i = 0; i < n; i++) {
    uint16_t d = q->next_desc;
    q->next_desc = (uint16_t)((q->next_desc + 1) % q->size);
    struct virtq_desc* desc = &q->rings->desc[d];
    desc->addr = (uintptr_t)bufs[i].addr;
    desc->len = bufs[i].len;
    desc->flags =
        (uint16_t)((bufs[i].write ? VIRTQ_DESC_F_WRITE : 0) | (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
    desc->next = i + 1 < n ? q->next_desc : 0;
  }
  virtq_publish(dev, q, head);
  return head;
}

bool virtq_wait(struct virtq* q, uint64_t timeout_ms, uint32_t* id, uint32_t* len) {
  volatile struct virtq_used* used = &q->rings->used;
  uint64_t start = rdtsc();
  while (used->idx == q->last_used) {
    if (rdtsc() - start > timeout_ms * TG_TICKS_PER_MS) return false;
    cpu_relax();
  }
  compiler_barrier();
  const volatile struct virtq_used_elem* e = &used->ring[q->last_used % q->size];
  if (id != NULL) *id = e->id;
  if (len != NULL) *len = e->len;
  q->last_used++;
  return true;
}
