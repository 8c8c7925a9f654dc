/* Mode `smp`: finds the CPUs in the MP table (Intel MultiProcessor Specification 1.4,
 * chapter 4), starts each application processor with INIT-SIPI-SIPI through the xAPIC,
 * lets each print `tg: cpu <apic id> up` from long mode, and waits for all of them. */
#include "tg.h"

#define MP_FLOAT_SIG 0x5f504d5f  /* "_MP_" */
#define MP_CONFIG_SIG 0x504d4350 /* "PCMP" */
#define MP_ENTRY_PROCESSOR 0
#define MP_ENTRY_LAST 4 /* local interrupt assignment */
#define MP_PROCESSOR_ENABLED 1
#define MP_PROCESSOR_BSP 2
#define BDA_EBDA_SEGMENT 0x40e
#define BDA_BASE_MEMORY_KB 0x413
#define BIOS_ROM_START 0xf0000
#define BIOS_ROM_END 0x100000

#define APIC_ID 0x020
#define APIC_SVR 0x0f0
#define APIC_ICR_LOW 0x300
#define APIC_ICR_HIGH 0x310
#define APIC_SVR_ENABLE 0x100
#define APIC_SPURIOUS_VECTOR 0xff
#define APIC_ICR_PENDING 0x1000
#define APIC_ICR_INIT 0x4500    /* INIT, level assert */
#define APIC_ICR_STARTUP 0x4600 /* Start-up, level assert; | vector */

#define INIT_DELAY_MS 10
#define SIPI_DELAY_TICKS (TG_TICKS_PER_MS / 5) /* 200 us */
#define AP_WAIT_MS 10000

extern const char tg_trampoline_start[], tg_trampoline_end[];
extern volatile uint32_t tg_ap_cr3;

static volatile uint32_t cpus_up;
static volatile uint8_t apic_up[256]; /* by APIC id, set by the AP itself */
static uint64_t lapic = TG_LAPIC_ADDR;

struct mp_cpus {
  uint32_t count;
  uint8_t apic_id[TG_MAX_VCPUS];
  bool bsp[TG_MAX_VCPUS];
};

static uint8_t checksum(uint64_t addr, uint32_t len) {
  uint8_t sum = 0;
  for (uint32_t i = 0; i < len; i++) sum = (uint8_t)(sum + *(const volatile uint8_t*)(addr + i));
  return sum;
}

/* The MP floating pointer structure in [start, start + len), 16-byte aligned. */
static uint64_t scan_floating_pointer(uint64_t start, uint64_t len) {
  for (uint64_t a = start; a + 16 <= start + len; a += 16) {
    if (*(const volatile uint32_t*)a == MP_FLOAT_SIG && checksum(a, 16) == 0) return a;
  }
  return 0;
}

static uint64_t find_floating_pointer(void) {
  uint64_t ebda = (uint64_t) * (const volatile uint16_t*)BDA_EBDA_SEGMENT << 4;
  uint64_t base_kb = *(const volatile uint16_t*)BDA_BASE_MEMORY_KB;
  uint64_t found = 0;
  if (ebda != 0) found = scan_floating_pointer(ebda, 1024);
  if (found == 0 && base_kb != 0) found = scan_floating_pointer(base_kb * 1024 - 1024, 1024);
  if (found == 0) found = scan_floating_pointer(TG_EBDA_START, 1024);
  if (found == 0) found = scan_floating_pointer(BIOS_ROM_START, BIOS_ROM_END - BIOS_ROM_START);
  return found;
}

static bool read_mp_table(struct mp_cpus* cpus) {
  cpus->count = 0;
  uint64_t fp = find_floating_pointer();
  if (fp == 0) {
    tg_printf("tg: error smp no MP floating pointer\n");
    return false;
  }
  uint64_t table = *(const volatile uint32_t*)(fp + 4);
  if (table == 0 || *(const volatile uint32_t*)table != MP_CONFIG_SIG) {
    tg_printf("tg: error smp MP floating pointer at 0x%llx has no configuration table\n",
              (unsigned long long)fp);
    return false;
  }
  uint16_t length = *(const volatile uint16_t*)(table + 4);
  if (length < 44 || checksum(table, length) != 0) {
    tg_printf("tg: error smp MP configuration table at 0x%llx: bad length/checksum\n",
              (unsigned long long)table);
    return false;
  }
  uint32_t lapic_addr = *(const volatile uint32_t*)(table + 36);
  if (lapic_addr != 0) lapic = lapic_addr;
  // Walk the entries by the table's length, as Linux does: qboot (QEMU's microvm firmware)
  // leaves entry_count at 0.
  uint64_t e = table + 44;
  while (e < table + length) {
    uint8_t type = *(const volatile uint8_t*)e;
    if (type > MP_ENTRY_LAST) break;
    if (type == MP_ENTRY_PROCESSOR) {
      uint8_t flags = *(const volatile uint8_t*)(e + 3);
      if ((flags & MP_PROCESSOR_ENABLED) && cpus->count < TG_MAX_VCPUS) {
        cpus->apic_id[cpus->count] = *(const volatile uint8_t*)(e + 1);
        cpus->bsp[cpus->count] = (flags & MP_PROCESSOR_BSP) != 0;
        cpus->count++;
      }
      e += 20;
    } else {
      e += 8;  // bus, I/O APIC, I/O interrupt, local interrupt
    }
  }
  tg_printf("tg: mp table=0x%llx floating=0x%llx cpus=%u lapic=0x%llx\n", (unsigned long long)table,
            (unsigned long long)fp, cpus->count, (unsigned long long)lapic);
  return true;
}

static uint32_t lapic_read(uint32_t reg) { return mmio_read32(lapic + reg); }
static void lapic_write(uint32_t reg, uint32_t v) { mmio_write32(lapic + reg, v); }

static void send_ipi(uint8_t apic_id, uint32_t icr_low) {
  lapic_write(APIC_ICR_HIGH, (uint32_t)apic_id << 24);
  lapic_write(APIC_ICR_LOW, icr_low);
  for (int i = 0; i < 1000 && (lapic_read(APIC_ICR_LOW) & APIC_ICR_PENDING); i++) cpu_relax();
}

static bool wait_up(uint32_t want, uint64_t timeout_ticks) {
  uint64_t start = rdtsc();
  while (cpus_up < want) {
    if (rdtsc() - start > timeout_ticks) return false;
    cpu_relax();
  }
  return true;
}

void tg_ap_main(void) {
  uint32_t id = lapic_read(APIC_ID) >> 24;
  tg_printf("tg: cpu %u up\n", id);
  apic_up[id & 0xff] = 1;
  __atomic_add_fetch(&cpus_up, 1, __ATOMIC_RELEASE);
  tg_halt_forever();
}

void smp_run(void) {
  struct mp_cpus cpus;
  if (!read_mp_table(&cpus)) return;
  uint32_t bsp_id = lapic_read(APIC_ID) >> 24;
  tg_printf("tg: cpu %u bsp\n", bsp_id);
  memcpy((void*)TG_TRAMPOLINE_ADDR, tg_trampoline_start,
         (size_t)(tg_trampoline_end - tg_trampoline_start));
  tg_ap_cr3 = (uint32_t)read_cr3();
  lapic_write(APIC_SVR, APIC_SVR_ENABLE | APIC_SPURIOUS_VECTOR);
  // INIT to every AP, one wait, then a SIPI to each, and a second SIPI to those not up
  // after 200 us (the MP specification's sequence, done for all APs at once).
  uint32_t started = 0;
  for (uint32_t i = 0; i < cpus.count; i++) {
    if (cpus.bsp[i] || cpus.apic_id[i] == bsp_id) continue;
    send_ipi(cpus.apic_id[i], APIC_ICR_INIT);
    started++;
  }
  if (started > 0) tg_delay_ticks(INIT_DELAY_MS * TG_TICKS_PER_MS);
  for (int round = 0; round < 2; round++) {
    for (uint32_t i = 0; i < cpus.count; i++) {
      if (cpus.bsp[i] || cpus.apic_id[i] == bsp_id || apic_up[cpus.apic_id[i]]) continue;
      send_ipi(cpus.apic_id[i], APIC_ICR_STARTUP | (TG_TRAMPOLINE_ADDR >> 12));
    }
    if (wait_up(started, SIPI_DELAY_TICKS)) break;
  }
  bool all = wait_up(started, AP_WAIT_MS * TG_TICKS_PER_MS);
  tg_printf("tg: smp cpus=%u aps=%u up=%u\n", cpus.count, started, cpus_up);
  if (!all) tg_printf("tg: error smp %u of %u APs came up\n", cpus_up, started);
}
