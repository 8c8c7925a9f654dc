/* tg_main: the banner, the boot facts, the modes the command line selects, then the end of
 * the VM (i8042 reset, or HLT with testguest.end=halt). See README.md for the output. */
#include "virtio.h"

#define I8042_CMD_RESET 0xfe
#define MAX_DEVICES 8

static TG_NOINIT struct tg_boot_info info;

static void print_boot_info(void) {
  tg_printf("tg: cmdline=%s\n", info.cmdline);
  for (uint32_t i = 0; i < info.e820_count; i++) {
    if (info.e820[i].size == 0) continue;  // qboot's PVH map ends with an empty entry
    tg_printf("tg: e820 addr=0x%llx size=0x%llx type=%u\n", (unsigned long long)info.e820[i].addr,
              (unsigned long long)info.e820[i].size, info.e820[i].type);
  }
  tg_printf("tg: initrd addr=0x%llx size=0x%llx\n", (unsigned long long)info.initrd_addr,
            (unsigned long long)info.initrd_size);
}

__attribute__((noreturn)) static void end_vm(const char* cmdline) {
  char how[16];
  if (cmdline_value(cmdline, "testguest.end", how, sizeof(how)) && memcmp(how, "halt", 5) == 0) {
    tg_printf("tg: halt\n");
    tg_halt_forever();
  }
  outb(TG_I8042_COMMAND_PORT, I8042_CMD_RESET);
  tg_halt_forever();  // no i8042 (QEMU's microvm has none): stay halted
}

void tg_main(int entry, uint64_t boot_ptr) {
  serial_init();
  tg_printf("tg: skiff-testguest entry=%s\n", boot_entry_name(entry));
  boot_info_read(entry, boot_ptr, &info);
  print_boot_info();
  const char* cmdline = info.cmdline;
  if (cmdline_has_mode(cmdline, "smp")) smp_run();
  bool blk = cmdline_has_mode(cmdline, "blk");
  bool net = cmdline_has_mode(cmdline, "net");
  bool control = cmdline_has_mode(cmdline, "control");
  bool garbage = cmdline_has_mode(cmdline, "garbage");
  if (blk || net || control || garbage) {
    struct virtio_dev devs[MAX_DEVICES];
    uint32_t n = virtio_discover(cmdline, devs, MAX_DEVICES);
    if (blk) blk_run(cmdline, devs, n);
    if (net) net_run(cmdline, devs, n);
    if (control) control_run(cmdline, devs, n);
    if (garbage) garbage_run(cmdline, devs, n);
  }
  tg_printf("tg: done\n");
  end_vm(cmdline);
}
