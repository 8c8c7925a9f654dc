/* Mode `net`: virtio-net. Sends one Ethernet frame, an ARP request "who-has <peer> tell
 * <ip>" (testguest.ip=, testguest.peer=; QEMU user networking's 10.0.2.15 and 10.0.2.2 by
 * default), and prints the first frame it receives (a host answering ARP replies to it). */
#include "virtio.h"

#define VIRTIO_NET_F_MAC (1ull << 5)
#define NET_CONFIG_MAC 0
#define NET_HDR_SIZE 12 /* struct virtio_net_hdr with num_buffers (VERSION_1) */
#define FRAME_MAX 1514
#define ARP_FRAME_SIZE 42
#define RX_TIMEOUT_MS 10000
#define TX_TIMEOUT_MS 10000
#define PRINT_MAX 64

static TG_NOINIT struct virtq_rings rx_rings, tx_rings;
static TG_NOINIT uint8_t rx_buf[NET_HDR_SIZE + FRAME_MAX];
static TG_NOINIT uint8_t tx_buf[NET_HDR_SIZE + ARP_FRAME_SIZE];

/* Parses a dotted IPv4 address into 4 bytes. */
static bool parse_ip(const char* s, uint8_t out[4]) {
  for (int i = 0; i < 4; i++) {
    uint64_t v;
    if (!tg_parse_u64(&s, &v) || v > 255) return false;
    out[i] = (uint8_t)v;
    if (i < 3 && *s++ != '.') return false;
  }
  return *s == '\0';
}

static void ip_option(const char* cmdline, const char* key, const char* fallback, uint8_t out[4]) {
  char buf[32];
  if (!cmdline_value(cmdline, key, buf, sizeof(buf)) || !parse_ip(buf, out)) {
    parse_ip(fallback, out);
  }
}

static void put16(uint8_t* p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static void build_arp_request(uint8_t* f, const uint8_t mac[6], const uint8_t ip[4],
                              const uint8_t peer[4]) {
  memset(f, 0xff, 6);  // broadcast
  memcpy(f + 6, mac, 6);
  put16(f + 12, 0x0806);  // ARP
  put16(f + 14, 1);       // Ethernet
  put16(f + 16, 0x0800);  // IPv4
  f[18] = 6;
  f[19] = 4;
  put16(f + 20, 1);  // request
  memcpy(f + 22, mac, 6);
  memcpy(f + 28, ip, 4);
  memset(f + 32, 0, 6);
  memcpy(f + 38, peer, 4);
}

void net_run(const char* cmdline, struct virtio_dev* devs, uint32_t n) {
  struct virtio_dev* dev = virtio_pick(
      devs, n, VIRTIO_ID_NET, TG_VIRTIO_MMIO_BASE + TG_SLOT_NET * TG_VIRTIO_MMIO_SLOT_SIZE);
  if (dev == NULL) {
    tg_printf("tg: error net no virtio-net device\n");
    return;
  }
  struct virtq rx, tx;
  if (!virtio_begin_init(dev, VIRTIO_NET_F_MAC) || !virtio_setup_queue(dev, &rx, 0, &rx_rings) ||
      !virtio_setup_queue(dev, &tx, 1, &tx_rings)) {
    return;
  }
  virtio_driver_ok(dev);
  uint8_t mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
  if (dev->driver_features & VIRTIO_NET_F_MAC) {
    for (int i = 0; i < 6; i++) mac[i] = virtio_config8(dev, NET_CONFIG_MAC + (uint32_t)i);
  }
  uint8_t ip[4], peer[4];
  ip_option(cmdline, "testguest.ip", "10.0.2.15", ip);
  ip_option(cmdline, "testguest.peer", "10.0.2.2", peer);

  struct virtq_buf rx_desc = {rx_buf, sizeof(rx_buf), true};
  virtq_submit(dev, &rx, &rx_desc, 1);

  memset(tx_buf, 0, NET_HDR_SIZE);
  build_arp_request(tx_buf + NET_HDR_SIZE, mac, ip, peer);
  struct virtq_buf tx_desc = {tx_buf, sizeof(tx_buf), false};
  virtq_submit(dev, &tx, &tx_desc, 1);
  if (!virtq_wait(&tx, TX_TIMEOUT_MS, NULL, NULL)) {
    tg_printf("tg: error net tx: no completion\n");
    return;
  }
  tg_printf(
      "tg: net tx arp who-has %u.%u.%u.%u tell %u.%u.%u.%u mac=%02x:%02x:%02x:%02x:%02x:%02x "
      "len=%u\n",
      peer[0], peer[1], peer[2], peer[3], ip[0], ip[1], ip[2], ip[3], mac[0], mac[1], mac[2],
      mac[3], mac[4], mac[5], ARP_FRAME_SIZE);
  uint32_t len;
  if (!virtq_wait(&rx, RX_TIMEOUT_MS, NULL, &len)) {
    tg_printf("tg: error net rx: nothing received\n");
    return;
  }
  if (len < NET_HDR_SIZE) {
    tg_printf("tg: error net rx: %u bytes, shorter than the header\n", len);
    return;
  }
  uint32_t frame = len - NET_HDR_SIZE;
  tg_printf("tg: net rx len=%u\n", frame);
  tg_print_hex_line("tg: net rx frame=", rx_buf + NET_HDR_SIZE,
                    frame < PRINT_MAX ? frame : PRINT_MAX);
}
