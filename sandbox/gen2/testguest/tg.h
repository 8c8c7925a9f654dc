/* The test guest's shared declarations: CPU and I/O primitives, the serial console, the
 * boot facts, the command line, and the modes. Freestanding C: no libc. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "boot_abi.h"

/* ---- CPU and I/O primitives ---- */
static inline void outb(uint16_t port, uint8_t value) {
  __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port));
}
static inline uint8_t inb(uint16_t port) {
  uint8_t value;
  __asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port));
  return value;
}
static inline uint32_t mmio_read32(uint64_t addr) { return *(volatile uint32_t*)addr; }
static inline void mmio_write32(uint64_t addr, uint32_t value) {
  *(volatile uint32_t*)addr = value;
}
static inline uint8_t mmio_read8(uint64_t addr) { return *(volatile uint8_t*)addr; }
static inline uint64_t rdtsc(void) {
  uint32_t lo, hi;
  __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return ((uint64_t)hi << 32) | lo;
}
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
static inline void compiler_barrier(void) { __asm__ volatile("" ::: "memory"); }
static inline uint64_t read_cr3(void) {
  uint64_t value;
  __asm__ volatile("mov %%cr3, %0" : "=r"(value));
  return value;
}
__attribute__((noreturn)) void tg_halt_forever(void);

/* Large buffers go to .noinit, which start64 does not clear (clearing is emulated, byte by
 * byte, on PVM hosts): their users write them before reading. */
#define TG_NOINIT __attribute__((section(".noinit")))

/* Time-outs and delays count TSC ticks, uncalibrated: TG_TICKS_PER_MS assumes a TSC of at
 * most 4 GHz, so a wait is at least as long as it says (longer on slower TSCs). */
#define TG_TICKS_PER_MS 4000000ull
void tg_delay_ticks(uint64_t ticks);

/* ---- freestanding library (lib.c) ---- */
void* memcpy(void* dst, const void* src, size_t n);
void* memset(void* dst, int c, size_t n);
void* memmove(void* dst, const void* src, size_t n);
int memcmp(const void* a, const void* b, size_t n);
size_t tg_strlen(const char* s);
bool tg_starts_with(const char* s, const char* prefix);
/* Parses an unsigned number (0x hex or decimal) at *s, advancing it; false if none. */
bool tg_parse_u64(const char** s, uint64_t* value);

/* ---- serial console (serial.c, print.c) ---- */
void serial_init(void);
/* Writes n bytes to COM1 (callers hold the console lock: use tg_printf). */
void serial_write(const char* s, size_t n);
/* Prints one formatted line (the format ends with \n) on COM1, whole, under a spinlock so
 * lines from several CPUs do not interleave. Conversions: %s %c %d %u %x %lx %llx %lu
 * %llu %zu %p, with an optional 0 flag and width. */
void tg_printf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints `len` bytes as lower-case hex after `prefix` (one line). */
void tg_print_hex_line(const char* prefix, const void* data, size_t len);

/* ---- boot facts (boot_info.c) ---- */
struct tg_e820_entry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
};
struct tg_boot_info {
  int entry; /* TG_ENTRY_* */
  char cmdline[TG_CMDLINE_MAX_SIZE];
  uint32_t e820_count;
  struct tg_e820_entry e820[BP_E820_MAX];
  uint64_t initrd_addr;
  uint64_t initrd_size;
};
/* Copies what the loader left (zero page or PVH start info) into `info`. */
void boot_info_read(int entry, uint64_t boot_ptr, struct tg_boot_info* info);
const char* boot_entry_name(int entry);

/* ---- command line (cmdline.c) ---- */
/* True if `mode` is one of the comma-separated names of any testguest.mode= option. */
bool cmdline_has_mode(const char* cmdline, const char* mode);
/* Copies the value of the last `key=` option into `out` (NUL-terminated); false if none. */
bool cmdline_value(const char* cmdline, const char* key, char* out, size_t out_size);
/* Parses `testguest.<key>=<number>`, or returns `fallback`. */
uint64_t cmdline_number(const char* cmdline, const char* key, uint64_t fallback);
struct tg_mmio_device {
  uint64_t base;
  uint64_t size;
  uint32_t irq;
};
/* The virtio_mmio.device=<size>@<base>:<irq>[:<id>] entries, in command-line order. */
uint32_t cmdline_virtio_devices(const char* cmdline, struct tg_mmio_device* out, uint32_t max);

/* Called by entry.S with the entry kind and the boot_params / hvm_start_info address. */
__attribute__((noreturn)) void tg_main(int entry, uint64_t boot_ptr);

/* ---- modes ---- */
void smp_run(void);    /* smp.c */
void tg_ap_main(void); /* smp.c, called by entry.S on each AP */
struct virtio_dev;     /* virtio.h */
/* Each gets the command line and the virtio devices main.c discovered. */
void blk_run(const char* cmdline, struct virtio_dev* devs, uint32_t n);     /* blk.c */
void net_run(const char* cmdline, struct virtio_dev* devs, uint32_t n);     /* net.c */
void control_run(const char* cmdline, struct virtio_dev* devs, uint32_t n); /* control.c */
void garbage_run(const char* cmdline, struct virtio_dev* devs, uint32_t n); /* garbage.c */
