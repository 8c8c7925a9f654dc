/* A minimal virtio driver: the virtio-mmio transport (version 2, "modern") and split
 * virtqueues, polled (no interrupts). Numbers as in the virtio 1.2 specification (4.2
 * "Virtio Over MMIO", 2.7 "Split Virtqueues"). One request in flight per queue at a time,
 * except receive queues, which keep buffers posted. */
#pragma once

#include "tg.h"

/* Device ids (5 Device Types). */
#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_CONSOLE 3

/* Device status (2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80

#define VIRTIO_F_VERSION_1 (1ull << 32)

/* Descriptor flags. */
#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2

/* The guest's queue size: at most this many entries (the device's QueueNumMax may be less). */
#define TG_QUEUE_SIZE 8

struct virtq_desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
struct virtq_avail {
  uint16_t flags;
  uint16_t idx;
  uint16_t ring[TG_QUEUE_SIZE];
  uint16_t used_event;
};
struct virtq_used_elem {
  uint32_t id;
  uint32_t len;
};
struct virtq_used {
  uint16_t flags;
  uint16_t idx;
  struct virtq_used_elem ring[TG_QUEUE_SIZE];
  uint16_t avail_event;
};

/* One queue's rings, in one page. */
struct virtq_rings {
  struct virtq_desc desc[TG_QUEUE_SIZE] __attribute__((aligned(16)));
  struct virtq_avail avail __attribute__((aligned(16)));
  struct virtq_used used __attribute__((aligned(16)));
} __attribute__((aligned(4096)));

struct virtq {
  uint16_t index;
  uint16_t size;
  uint16_t next_desc; /* next free descriptor (used round-robin) */
  uint16_t avail_idx; /* driver's copy of avail.idx */
  uint16_t last_used; /* used.idx seen so far */
  struct virtq_rings* rings;
};

struct virtio_dev {
  uint64_t base;
  uint32_t irq;
  uint32_t device_id;
  uint64_t device_features;
  uint64_t driver_features;
};

/* One buffer of a chain: device-writable if `write`. */
struct virtq_buf {
  const volatile void* addr;
  uint32_t len;
  bool write;
};

/* The virtio-mmio devices on the command line, probed: their magic, version 2 and a
 * non-zero device id checked. Prints one `tg: virtio` line per device. */
uint32_t virtio_discover(const char* cmdline, struct virtio_dev* out, uint32_t max);
/* The first device of `device_id` (optionally at `prefer_base` if such a device exists). */
struct virtio_dev* virtio_pick(struct virtio_dev* devs, uint32_t n, uint32_t device_id,
                               uint64_t prefer_base);

/* Reset, ACKNOWLEDGE|DRIVER, features (VERSION_1 | wanted & offered), FEATURES_OK. */
bool virtio_begin_init(struct virtio_dev* dev, uint64_t wanted_features);
/* Sets up queue `index` with its own rings page. */
bool virtio_setup_queue(struct virtio_dev* dev, struct virtq* q, uint16_t index,
                        struct virtq_rings* rings);
void virtio_driver_ok(struct virtio_dev* dev);
void virtio_reset(struct virtio_dev* dev);
uint32_t virtio_status(const struct virtio_dev* dev);
uint8_t virtio_config8(const struct virtio_dev* dev, uint32_t offset);
uint32_t virtio_config32(const struct virtio_dev* dev, uint32_t offset);

/* Writes a chain of `n` buffers into free descriptors, makes it available, notifies.
 * Returns the head descriptor index. */
uint16_t virtq_submit(struct virtio_dev* dev, struct virtq* q, const struct virtq_buf* bufs,
                      uint32_t n);
/* Makes a hand-written chain (head `head`, descriptors already in q->rings->desc) available
 * and notifies: how the garbage mode posts malformed chains. */
void virtq_publish(struct virtio_dev* dev, struct virtq* q, uint16_t head);
/* Polls the used ring for the next completion, up to `timeout_ms`. */
bool virtq_wait(struct virtq* q, uint64_t timeout_ms, uint32_t* id, uint32_t* len);
