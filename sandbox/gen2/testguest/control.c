/* Mode `control`: the control channel, a virtio-console (port 0, no multiport). Writes the
 * line "tg-control hello" to the host, then reads one line from it (up to a newline),
 * prints it and writes it back. */
#include "virtio.h"

#define RX_QUEUE 0
#define TX_QUEUE 1
#define LINE_MAX 200
#define TIMEOUT_MS 30000

static TG_NOINIT struct virtq_rings rx_rings, tx_rings;
static TG_NOINIT uint8_t rx_buf[LINE_MAX];
static TG_NOINIT char line[LINE_MAX + 2];
static const char kHello[] = "tg-control hello\n";

static bool send(struct virtio_dev* dev, struct virtq* tx, const void* data, uint32_t len) {
  struct virtq_buf b = {data, len, false};
  virtq_submit(dev, tx, &b, 1);
  if (!virtq_wait(tx, TIMEOUT_MS, NULL, NULL)) {
    tg_printf("tg: error control tx: no completion\n");
    return false;
  }
  return true;
}

void control_run(const char* cmdline, struct virtio_dev* devs, uint32_t n) {
  (void)cmdline;
  struct virtio_dev* dev = virtio_pick(
      devs, n, VIRTIO_ID_CONSOLE, TG_VIRTIO_MMIO_BASE + TG_SLOT_CONTROL * TG_VIRTIO_MMIO_SLOT_SIZE);
  if (dev == NULL) {
    tg_printf("tg: error control no virtio-console device\n");
    return;
  }
  struct virtq rx, tx;
  if (!virtio_begin_init(dev, 0) || !virtio_setup_queue(dev, &rx, RX_QUEUE, &rx_rings) ||
      !virtio_setup_queue(dev, &tx, TX_QUEUE, &tx_rings)) {
    return;
  }
  virtio_driver_ok(dev);
  struct virtq_buf rx_desc = {rx_buf, sizeof(rx_buf), true};
  virtq_submit(dev, &rx, &rx_desc, 1);
  if (!send(dev, &tx, kHello, sizeof(kHello) - 1)) return;
  tg_printf("tg: control tx hello\n");

  size_t have = 0;
  bool complete = false;
  while (!complete) {
    uint32_t len;
    if (!virtq_wait(&rx, TIMEOUT_MS, NULL, &len)) {
      tg_printf("tg: error control rx: no line within %u ms\n", TIMEOUT_MS);
      return;
    }
    if (len > sizeof(rx_buf)) len = sizeof(rx_buf);
    for (uint32_t i = 0; i < len && !complete; i++) {
      if (rx_buf[i] == '\n') {
        complete = true;
      } else if (have < LINE_MAX) {
        line[have++] = (char)rx_buf[i];
      }
    }
    if (!complete) virtq_submit(dev, &rx, &rx_desc, 1);
  }
  line[have] = '\0';
  tg_printf("tg: control rx=%s\n", line);
  line[have] = '\n';
  if (!send(dev, &tx, line, (uint32_t)have + 1)) return;
  tg_printf("tg: control echoed %u bytes\n", (unsigned)have + 1);
}
