/* tg_printf: a small printf into a line buffer, written to COM1 under a spinlock. */
#include "tg.h"

#define LINE_MAX 512

static volatile uint32_t console_lock;

static void lock_console(void) {
  while (__atomic_exchange_n(&console_lock, 1, __ATOMIC_ACQUIRE) != 0) {
    while (console_lock != 0) cpu_relax();
  }
}

static void unlock_console(void) { __atomic_store_n(&console_lock, 0, __ATOMIC_RELEASE); }

struct line {
  char buf[LINE_MAX];
  size_t len;
};

static void put(struct line* l, char c) {
  if (l->len < LINE_MAX) l->buf[l->len++] = c;
}

static void put_number(struct line* l, uint64_t v, unsigned base, int width, char pad) {
  char digits[24];
  int n = 0;
  do {
    unsigned d = (unsigned)(v % base);
    digits[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
    v /= base;
  } while (v != 0);
  for (int i = n; i < width; i++) put(l, pad);
  while (n > 0) put(l, digits[--n]);
}

static void format(struct line* l, const char* fmt, va_list ap) {
  for (const char* p = fmt; *p != '\0'; p++) {
    if (*p != '%') {
      put(l, *p);
      continue;
    }
    p++;
    char pad = ' ';
    int width = 0;
    if (*p == '0') {
      pad = '0';
      p++;
    }
    while (*p >= '0' && *p <= '9') width = width * 10 + (*p++ - '0');
    int longs = 0;
    while (*p == 'l' || *p == 'z') {
      longs = 2;
      p++;
    }
    uint64_t v;
    switch (*p) {
      case 's': {
        const char* s = va_arg(ap, const char*);
        if (s == NULL) s = "(null)";
        while (*s != '\0') put(l, *s++);
        break;
      }
      case 'c':
        put(l, (char)va_arg(ap, int));
        break;
      case 'd': {
        int64_t s = longs ? va_arg(ap, int64_t) : va_arg(ap, int);
        if (s < 0) {
          put(l, '-');
          v = (uint64_t)(-(s + 1)) + 1;
        } else {
          v = (uint64_t)s;
        }
        put_number(l, v, 10, width, pad);
        break;
      }
      case 'u':
        v = longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
        put_number(l, v, 10, width, pad);
        break;
      case 'x':
        v = longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
        put_number(l, v, 16, width, pad);
        break;
      case 'p':
        put(l, '0');
        put(l, 'x');
        put_number(l, (uint64_t)(uintptr_t)va_arg(ap, void*), 16, width, pad);
        break;
      case '%':
        put(l, '%');
        break;
      default:
        put(l, '?');
        break;
    }
  }
}

static void emit(struct line* l) {
  if (l->len == LINE_MAX) l->buf[LINE_MAX - 1] = '\n';  // a cut line still ends
  lock_console();
  serial_write(l->buf, l->len);
  unlock_console();
}

void tg_printf(const char* fmt, ...) {
  struct line l;
  l.len = 0;
  va_list ap;
  va_start(ap, fmt);
  format(&l, fmt, ap);
  va_end(ap);
  emit(&l);
}

void tg_print_hex_line(const char* prefix, const void* data, size_t len) {
  static const char kHex[] = "0123456789abcdef";
  struct line l;
  l.len = 0;
  while (*prefix != '\0') put(&l, *prefix++);
  const uint8_t* b = data;
  for (size_t i = 0; i < len; i++) {
    put(&l, kHex[b[i] >> 4]);
    put(&l, kHex[b[i] & 15]);
  }
  put(&l, '\n');
  emit(&l);
}
