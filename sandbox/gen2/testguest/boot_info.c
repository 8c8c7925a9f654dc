/* The boot facts the loader left: the Linux zero page (struct boot_params) for the 32- and
 * 64-bit boot protocols, or the PVH start info. Copied out at once, before anything can
 * overwrite them. */
#include "tg.h"

static uint8_t rd8(uint64_t addr) { return *(const volatile uint8_t*)addr; }
static uint32_t rd32(uint64_t addr) { return *(const volatile uint32_t*)addr; }
static uint64_t rd64(uint64_t addr) { return *(const volatile uint64_t*)addr; }

static void copy_cmdline(uint64_t addr, struct tg_boot_info* info) {
  size_t n = 0;
  if (addr != 0) {
    const char* src = (const char*)(uintptr_t)addr;
    while (n + 1 < sizeof(info->cmdline) && src[n] != '\0') {
      info->cmdline[n] = src[n];
      n++;
    }
  }
  info->cmdline[n] = '\0';
}

static void read_zero_page(uint64_t bp, struct tg_boot_info* info) {
  uint64_t cmdline = rd32(bp + BP_CMD_LINE_PTR) | (uint64_t)rd32(bp + BP_EXT_CMD_LINE_PTR) << 32;
  copy_cmdline(cmdline, info);
  uint32_t n = rd8(bp + BP_E820_ENTRIES);
  if (n > BP_E820_MAX) n = BP_E820_MAX;
  for (uint32_t i = 0; i < n; i++) {
    uint64_t e = bp + BP_E820_TABLE + (uint64_t)i * BP_E820_ENTRY_SIZE;
    info->e820[i].addr = rd64(e);
    info->e820[i].size = rd64(e + 8);
    info->e820[i].type = rd32(e + 16);
  }
  info->e820_count = n;
  info->initrd_addr = rd32(bp + BP_RAMDISK_IMAGE) | (uint64_t)rd32(bp + BP_EXT_RAMDISK_IMAGE) << 32;
  info->initrd_size = rd32(bp + BP_RAMDISK_SIZE) | (uint64_t)rd32(bp + BP_EXT_RAMDISK_SIZE) << 32;
}

static void read_pvh(uint64_t si, struct tg_boot_info* info) {
  if (rd32(si + PVH_OFF_MAGIC) != PVH_MAGIC) {
    info->cmdline[0] = '\0';
    return;
  }
  copy_cmdline(rd64(si + PVH_OFF_CMDLINE_PADDR), info);
  if (rd32(si + PVH_OFF_VERSION) >= 1) {
    uint64_t map = rd64(si + PVH_OFF_MEMMAP_PADDR);
    uint32_t n = rd32(si + PVH_OFF_MEMMAP_ENTRIES);
    if (map == 0) n = 0;
    if (n > BP_E820_MAX) n = BP_E820_MAX;
    for (uint32_t i = 0; i < n; i++) {
      uint64_t e = map + (uint64_t)i * PVH_MEMMAP_ENTRY_SIZE;
      info->e820[i].addr = rd64(e);
      info->e820[i].size = rd64(e + 8);
      info->e820[i].type = rd32(e + 16);
    }
    info->e820_count = n;
  }
  if (rd32(si + PVH_OFF_NR_MODULES) > 0) {  // the first module is the initrd
    uint64_t mod = rd64(si + PVH_OFF_MODLIST_PADDR);
    info->initrd_addr = rd64(mod);
    info->initrd_size = rd64(mod + 8);
  }
}

void boot_info_read(int entry, uint64_t boot_ptr, struct tg_boot_info* info) {
  info->entry = entry;
  info->e820_count = 0;
  info->initrd_addr = 0;
  info->initrd_size = 0;
  if (entry == TG_ENTRY_PVH) {
    read_pvh(boot_ptr, info);
  } else {
    read_zero_page(boot_ptr, info);
  }
}

const char* boot_entry_name(int entry) {
  switch (entry) {
    case TG_ENTRY_LINUX64:
      return "linux64";
    case TG_ENTRY_LINUX32:
      return "linux32";
    case TG_ENTRY_PVH:
      return "pvh";
  }
  return "unknown";
}
