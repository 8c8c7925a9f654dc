/* Numbers shared by the test guest's assembly (entry.S), linker script and C code: the
 * Linux boot protocol's zero-page offsets (Documentation/arch/x86/boot.rst, zero-page.rst),
 * the PVH start info (xen/include/public/arch-x86/hvm/start_info.h), and the guest's own
 * choices (GDT selectors, the AP trampoline page, stacks). Guest-physical numbers the VMM
 * also knows come from tg_layout.h, generated from sandbox/gen2/vmm/layout.h. */
#pragma once

#include "tg_layout.h"

/* How the guest was entered; the first argument of tg_main. */
#define TG_ENTRY_LINUX64 0 /* 64-bit boot protocol: startup_64, rsi = boot_params */
#define TG_ENTRY_LINUX32 1 /* 32-bit boot protocol: startup_32, esi = boot_params */
#define TG_ENTRY_PVH 2     /* PVH: XEN_ELFNOTE_PHYS32_ENTRY, ebx = hvm_start_info */

/* The setup sectors of the bzImage: the boot sector plus TG_SETUP_SECTS more, 8 KiB: the
 * header and real-mode code in the first page, and in the second (TG_SETUP_BOOT_PARAMS) the
 * struct boot_params the real-mode code builds for the 32-bit entry (the loader's copy at
 * offset 0 cannot take the e820 table: the code sits there). */
#define TG_SETUP_SECTS 15
#define TG_SETUP_SIZE ((TG_SETUP_SECTS + 1) * 512)
#define TG_SETUP_BOOT_PARAMS 0x1000
#define TG_BOOT_PROTOCOL_VERSION 0x020f
#define TG_LOADFLAGS_LOADED_HIGH 0x01
#define TG_XLF_KERNEL_64 0x0001
#define TG_KERNEL_ALIGNMENT 0x100000
#define TG_MIN_ALIGNMENT 12 /* log2: 4 KiB */

/* struct boot_params (the zero page) offsets. */
#define BP_EXT_RAMDISK_IMAGE 0x0c0
#define BP_EXT_RAMDISK_SIZE 0x0c4
#define BP_EXT_CMD_LINE_PTR 0x0c8
#define BP_E820_ENTRIES 0x1e8
#define BP_SETUP_HEADER 0x1f1
#define BP_HDR_MAGIC 0x202 /* "HdrS" */
#define BP_VERSION 0x206
#define BP_CODE32_START 0x214
#define BP_RAMDISK_IMAGE 0x218
#define BP_RAMDISK_SIZE 0x21c
#define BP_CMD_LINE_PTR 0x228
#define BP_E820_TABLE 0x2d0
#define BP_E820_MAX 128
#define BP_E820_ENTRY_SIZE 20

/* struct hvm_start_info offsets. */
#define PVH_MAGIC 0x336ec578
#define PVH_OFF_MAGIC 0
#define PVH_OFF_VERSION 4
#define PVH_OFF_NR_MODULES 12
#define PVH_OFF_MODLIST_PADDR 16
#define PVH_OFF_CMDLINE_PADDR 24
#define PVH_OFF_MEMMAP_PADDR 40
#define PVH_OFF_MEMMAP_ENTRIES 48
#define PVH_MEMMAP_ENTRY_SIZE 24  /* addr, size, type, reserved */
#define PVH_MODLIST_ENTRY_SIZE 32 /* paddr, size, cmdline_paddr, reserved */
#define XEN_ELFNOTE_PHYS32_ENTRY 18

/* The guest's own GDT (boot and AP trampoline): null, 64-bit code, 32-bit code, data. The
 * 32-bit code and data selectors are the Linux 32-bit boot protocol's __BOOT_CS/__BOOT_DS. */
#define TG_SEL_CODE64 0x08
#define TG_SEL_CODE32 0x10
#define TG_SEL_DATA 0x18
#define TG_GDT_CODE64 0x00af9a000000ffff
#define TG_GDT_CODE32 0x00cf9a000000ffff
#define TG_GDT_DATA 0x00cf92000000ffff

/* Control registers and MSRs the entry code sets. */
#define TG_CR0_PE 0x00000001
#define TG_CR0_PG 0x80000000
#define TG_CR4_PAE 0x00000020
#define TG_MSR_EFER 0xc0000080
#define TG_EFER_LME 0x00000100

/* The APs' real-mode start page (SIPI vector = address >> 12). Below the zero page of
 * layout.h and above its GDT/IDT: RAM the VMM writes nothing to. */
#define TG_TRAMPOLINE_ADDR 0x6000

/* Stacks: the BSP's and one per AP, in the guest image's uncleared (.noinit) area. */
#define TG_BOOT_STACK_SIZE 0x4000
#define TG_AP_STACK_SIZE 0x2000
#define TG_MAX_APS (TG_MAX_VCPUS - 1)
