/* The kernel command line: space-separated options; the guest reads testguest.* options
 * and the virtio_mmio.device= entries a VMM (ours or QEMU's microvm) adds. */
#include "tg.h"

/* Calls `fn` with each option's start and length; stops when it returns true. */
static bool each_option(const char* cmdline, bool (*fn)(const char*, size_t, void*), void* arg) {
  const char* p = cmdline;
  while (*p != '\0') {
    while (*p == ' ') p++;
    const char* start = p;
    while (*p != '\0' && *p != ' ') p++;
    if (p > start && fn(start, (size_t)(p - start), arg)) return true;
  }
  return false;
}

static bool option_has_key(const char* opt, size_t len, const char* key, size_t* value_at) {
  size_t k = tg_strlen(key);
  if (len <= k || opt[k] != '=' || memcmp(opt, key, k) != 0) return false;
  *value_at = k + 1;
  return true;
}

struct mode_search {
  const char* mode;
};

static bool match_mode(const char* opt, size_t len, void* arg) {
  const struct mode_search* s = arg;
  size_t at;
  if (!option_has_key(opt, len, "testguest.mode", &at)) return false;
  size_t m = tg_strlen(s->mode);
  while (at < len) {
    size_t end = at;
    while (end < len && opt[end] != ',') end++;
    if (end - at == m && memcmp(opt + at, s->mode, m) == 0) return true;
    at = end + 1;
  }
  return false;
}

bool cmdline_has_mode(const char* cmdline, const char* mode) {
  struct mode_search s = {mode};
  return each_option(cmdline, match_mode, &s);
}

struct value_search {
  const char* key;
  char* out;
  size_t out_size;
  bool found;
};

static bool match_value(const char* opt, size_t len, void* arg) {
  struct value_search* s = arg;
  size_t at;
  if (!option_has_key(opt, len, s->key, &at)) return false;
  size_t n = len - at;
  if (n >= s->out_size) n = s->out_size - 1;
  memcpy(s->out, opt + at, n);
  s->out[n] = '\0';
  s->found = true;
  return false;  // the last one wins
}

bool cmdline_value(const char* cmdline, const char* key, char* out, size_t out_size) {
  struct value_search s = {key, out, out_size, false};
  each_option(cmdline, match_value, &s);
  return s.found;
}

uint64_t cmdline_number(const char* cmdline, const char* key, uint64_t fallback) {
  char buf[32];
  if (!cmdline_value(cmdline, key, buf, sizeof(buf))) return fallback;
  const char* p = buf;
  uint64_t v;
  if (!tg_parse_u64(&p, &v) || *p != '\0') return fallback;
  return v;
}

struct device_list {
  struct tg_mmio_device* out;
  uint32_t max;
  uint32_t count;
};

/* virtio_mmio.device=<size>[KMG]@<base>:<irq>[:<id>] (Linux's virtio_mmio module syntax). */
static bool match_device(const char* opt, size_t len, void* arg) {
  struct device_list* l = arg;
  size_t at;
  if (l->count == l->max || !option_has_key(opt, len, "virtio_mmio.device", &at)) return false;
  char buf[64];
  size_t n = len - at < sizeof(buf) - 1 ? len - at : sizeof(buf) - 1;
  memcpy(buf, opt + at, n);
  buf[n] = '\0';
  const char* p = buf;
  uint64_t size, base, irq;
  if (!tg_parse_u64(&p, &size)) return false;
  if (*p == 'K' || *p == 'k') {
    size <<= 10;
    p++;
  } else if (*p == 'M' || *p == 'm') {
    size <<= 20;
    p++;
  } else if (*p == 'G' || *p == 'g') {
    size <<= 30;
    p++;
  }
  if (*p++ != '@' || !tg_parse_u64(&p, &base) || *p++ != ':' || !tg_parse_u64(&p, &irq)) {
    return false;
  }
  l->out[l->count].base = base;
  l->out[l->count].size = size;
  l->out[l->count].irq = (uint32_t)irq;
  l->count++;
  return false;
}

uint32_t cmdline_virtio_devices(const char* cmdline, struct tg_mmio_device* out, uint32_t max) {
  struct device_list l = {out, max, 0};
  each_option(cmdline, match_device, &l);
  return l.count;
}
