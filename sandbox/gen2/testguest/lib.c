/* The few library routines a freestanding C program needs (the compiler may also emit
 * calls to memcpy/memset/memmove/memcmp itself). String moves use rep movsb/stosb: one
 * instruction for the PVM emulator instead of a loop. */
#include "tg.h"

void* memcpy(void* dst, const void* src, size_t n) {
  void* d = dst;
  __asm__ volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
  return dst;
}

void* memset(void* dst, int c, size_t n) {
  void* d = dst;
  __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
  return dst;
}

void* memmove(void* dst, const void* src, size_t n) {
  unsigned char* d = dst;
  const unsigned char* s = src;
  if (d <= s || d >= s + n) return memcpy(dst, src, n);
  while (n-- > 0) d[n] = s[n];
  return dst;
}

int memcmp(const void* a, const void* b, size_t n) {
  const unsigned char* x = a;
  const unsigned char* y = b;
  for (size_t i = 0; i < n; i++) {
    if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
  }
  return 0;
}

size_t tg_strlen(const char* s) {
  size_t n = 0;
  while (s[n] != '\0') n++;
  return n;
}

bool tg_starts_with(const char* s, const char* prefix) {
  while (*prefix != '\0') {
    if (*s++ != *prefix++) return false;
  }
  return true;
}

bool tg_parse_u64(const char** s, uint64_t* value) {
  const char* p = *s;
  uint64_t v = 0;
  int base = 10;
  if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
    base = 16;
    p += 2;
  }
  const char* digits = p;
  for (;; p++) {
    int d;
    if (*p >= '0' && *p <= '9') {
      d = *p - '0';
    } else if (base == 16 && *p >= 'a' && *p <= 'f') {
      d = *p - 'a' + 10;
    } else if (base == 16 && *p >= 'A' && *p <= 'F') {
      d = *p - 'A' + 10;
    } else {
      break;
    }
    v = v * (uint64_t)base + (uint64_t)d;
  }
  if (p == digits) return false;
  *s = p;
  *value = v;
  return true;
}

void tg_delay_ticks(uint64_t ticks) {
  uint64_t start = rdtsc();
  while (rdtsc() - start < ticks) cpu_relax();
}

void tg_halt_forever(void) {
  for (;;) __asm__ volatile("cli; hlt");
}
