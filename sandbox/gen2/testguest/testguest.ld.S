/* Linker script of the test guest (run through the C preprocessor for tg_layout.h).
 * One PT_LOAD at TG_KERNEL_LOAD_ADDR (p_paddr = p_vaddr, identity mapped) holding the
 * protected-mode part, a PT_NOTE with the PVH entry note, and the bzImage's real-mode
 * setup sectors in a non-allocated .setup section the build cuts out with objcopy. */
#include "tg_layout.h"

OUTPUT_FORMAT("elf64-x86-64")
OUTPUT_ARCH(i386:x86-64)
ENTRY(startup_64)

PHDRS {
  image PT_LOAD FLAGS(7);
  note PT_NOTE FLAGS(4);
}

SECTIONS {
  . = TG_KERNEL_LOAD_ADDR;
  _text = .;
  .head.text : { KEEP(*(.head.text)) } :image
  .text : { *(.text .text.*) } :image
  .rodata : { *(.rodata .rodata.*) } :image
  .notes : { KEEP(*(.note.Xen)) } :image :note
  .data : { *(.data .data.*) } :image
  _edata = .;
  .bss (NOLOAD) : ALIGN(64) {
    __bss_start = .;
    *(.bss .bss.*) *(COMMON)
    __bss_end = .;
  } :image
  .noinit (NOLOAD) : ALIGN(4096) { *(.noinit .noinit.*) } :image
  _end = .;

  /* Boot protocol header fields (entry.S). */
  _tg_syssize = (_edata - _text + 15) / 16;
  _tg_init_size = ALIGN(_end - _text, 4096);

  .setup 0 : { KEEP(*(.setup)) }

  /DISCARD/ : { *(.comment) *(.note.GNU-stack) *(.note.gnu.*) *(.eh_frame*) }
}
