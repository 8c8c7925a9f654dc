/* The test guest's entry points, all assembly in one file:
 *
 *   .setup       the bzImage's real-mode part (TG_SETUP_SIZE bytes, not loaded by the ELF):
 *                the Linux boot protocol header at 0x1f1 and a real-mode start that asks the
 *                BIOS for the e820 map, builds boot_params and enters 32-bit protected mode at
 *                code32_start.
 *   startup_32   offset 0x000 of the protected-mode part (0x100000): the 32-bit boot protocol.
 *   startup_64   offset 0x200 (0x100200): the 64-bit boot protocol, what skiff's VMM uses
 *                (long mode, identity paging, rsi = boot_params). The ELF's e_entry.
 *   pvh_start32  the PVH entry named by the XEN_ELFNOTE_PHYS32_ENTRY note (QEMU -kernel ELF).
 *   trampoline   the APs' real-mode start, copied to TG_TRAMPOLINE_ADDR by smp.c.
 *
 * The 32-bit paths build their own identity map of the first 4 GiB (2 MiB pages) and enter
 * long mode; all paths end in start64, which clears .bss, takes the boot stack and calls
 * tg_main(entry kind, boot_params or hvm_start_info). Ring-0 work is kept to a few hundred
 * instructions (emulated on PVM hosts). */

#include "boot_abi.h"

/* ---------------------------------------------------------------- bzImage setup sectors */
	.section .setup, "", @progbits
	.code16
setup_start:
	.org BP_SETUP_HEADER
	.byte TG_SETUP_SECTS		/* setup_sects */
	.word 0				/* root_flags */
	.long _tg_syssize		/* syssize: protected-mode part in 16-byte units */
	.word 0				/* ram_size */
	.word 0xffff			/* vid_mode: normal */
	.word 0				/* root_dev */
	.word 0xaa55			/* boot_flag */
	.org 0x200
	jmp setup_real_mode		/* jump: two bytes */
	.ascii "HdrS"			/* header */
	.word TG_BOOT_PROTOCOL_VERSION	/* version */
	.long 0				/* realmode_swtch */
	.word 0x1000			/* start_sys_seg */
	.word setup_version_string - setup_start - 0x200 /* kernel_version */
	.byte 0				/* type_of_loader */
	.byte TG_LOADFLAGS_LOADED_HIGH	/* loadflags */
	.word 0x8000			/* setup_move_size */
	.long TG_KERNEL_LOAD_ADDR	/* code32_start */
	.long 0				/* ramdisk_image */
	.long 0				/* ramdisk_size */
	.long 0				/* bootsect_kludge */
	.word 0				/* heap_end_ptr */
	.byte 0				/* ext_loader_ver */
	.byte 0				/* ext_loader_type */
	.long 0				/* cmd_line_ptr */
	.long 0x7fffffff		/* initrd_addr_max */
	.long TG_KERNEL_ALIGNMENT	/* kernel_alignment */
	.byte 0				/* relocatable_kernel */
	.byte TG_MIN_ALIGNMENT		/* min_alignment */
	.word TG_XLF_KERNEL_64		/* xloadflags */
	.long TG_CMDLINE_MAX_SIZE - 1	/* cmdline_size */
	.long 0				/* hardware_subarch */
	.quad 0				/* hardware_subarch_data */
	.long 0				/* payload_offset */
	.long 0				/* payload_length */
	.quad 0				/* setup_data */
	.quad TG_KERNEL_LOAD_ADDR	/* pref_address */
	.long _tg_init_size		/* init_size */
	.long 0				/* handover_offset */
	.long 0				/* kernel_info_offset */

/* Real mode, entered at setup segment + 0x20 : 0 with ds = es = ss = the setup segment
 * (where the loader filled in the header). */
setup_real_mode:
	cli
	cld
	/* boot_params at TG_SETUP_BOOT_PARAMS: zeroed, then the loader's setup header. */
	movw $TG_SETUP_BOOT_PARAMS, %di
	movw $4096, %cx
	xorb %al, %al
	rep stosb
	movw $BP_SETUP_HEADER, %si
	movw $(TG_SETUP_BOOT_PARAMS + BP_SETUP_HEADER), %di
	movw $(setup_real_mode - setup_start - BP_SETUP_HEADER), %cx
	rep movsb
	/* The BIOS's e820 map into it (int 0x15, eax 0xe820), as Linux's setup does. */
	xorl %ebx, %ebx
	movw $(TG_SETUP_BOOT_PARAMS + BP_E820_TABLE), %di
1:	movl $0xe820, %eax
	movl $BP_E820_ENTRY_SIZE, %ecx
	movl $0x534d4150, %edx		/* "SMAP" */
	int $0x15
	jc 2f
	cmpl $0x534d4150, %eax
	jne 2f
	incb (TG_SETUP_BOOT_PARAMS + BP_E820_ENTRIES)
	addw $BP_E820_ENTRY_SIZE, %di
	testl %ebx, %ebx
	jz 2f
	cmpb $BP_E820_MAX, (TG_SETUP_BOOT_PARAMS + BP_E820_ENTRIES)
	jb 1b
2:	/* ebx = linear address of the setup area. */
	xorl %ebx, %ebx
	movw %ds, %bx
	shll $4, %ebx
	leal (setup_gdt - setup_start)(%ebx), %eax
	movl %eax, (setup_gdtr - setup_start + 2)
	leal (setup_pm32 - setup_start)(%ebx), %eax
	movl %eax, (setup_farptr - setup_start)
	lgdtl (setup_gdtr - setup_start)
	movl %cr0, %eax
	orl $TG_CR0_PE, %eax
	movl %eax, %cr0
	ljmpl *(setup_farptr - setup_start)

	.code32
setup_pm32:
	movl $TG_SEL_DATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %fs
	movl %eax, %gs
	movl %eax, %ss
	leal TG_SETUP_BOOT_PARAMS(%ebx), %esi
	xorl %ebx, %ebx
	xorl %edi, %edi
	xorl %ebp, %ebp
	jmp *BP_CODE32_START(%esi)

	.balign 8
setup_gdt:
	.quad 0
	.quad TG_GDT_CODE64
	.quad TG_GDT_CODE32
	.quad TG_GDT_DATA
setup_gdtr:
	.word 4 * 8 - 1
	.long 0				/* patched: linear address of setup_gdt */
setup_farptr:
	.long 0				/* patched: linear address of setup_pm32 */
	.word TG_SEL_CODE32
setup_version_string:
	.asciz "skiff-testguest"
	.org TG_SETUP_SIZE

/* ---------------------------------------------------------------- protected-mode part */
	.section .head.text, "ax", @progbits
	.code32
	.globl startup_32
startup_32:				/* 0x100000: 32-bit boot protocol, esi = boot_params */
	cli
	movl $TG_ENTRY_LINUX32, %edi
	jmp enter_long_mode

	.org 0x200
	.code64
	.globl startup_64
startup_64:				/* 0x100200: 64-bit boot protocol, rsi = boot_params */
	cli
	movl $TG_ENTRY_LINUX64, %edi
	jmp start64

	.code32
	.globl pvh_start32
pvh_start32:				/* PVH: 32-bit, paging off, ebx = hvm_start_info */
	cli
	movl %ebx, %esi
	movl $TG_ENTRY_PVH, %edi

/* 32-bit protected mode, paging off; edi = entry kind, esi = boot info. */
enter_long_mode:
	lgdt boot_gdtr
	ljmp $TG_SEL_CODE32, $1f
1:	movl $TG_SEL_DATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl %eax, %fs
	movl %eax, %gs
	movl %edi, %ebp
	/* Identity map of the first 4 GiB: PML4[0] -> PDPT[0..3] -> 4 PDs of 2 MiB pages. */
	movl $boot_pml4, %edi
	xorl %eax, %eax
	movl $(6 * 4096 / 4), %ecx
	rep stosl
	movl $(boot_pdpt + 3), boot_pml4
	movl $(boot_pd + 3), boot_pdpt
	movl $(boot_pd + 0x1000 + 3), boot_pdpt + 8
	movl $(boot_pd + 0x2000 + 3), boot_pdpt + 16
	movl $(boot_pd + 0x3000 + 3), boot_pdpt + 24
	movl $boot_pd, %edi
	movl $0x83, %eax		/* present, writable, 2 MiB page */
	movl $2048, %ecx
2:	movl %eax, (%edi)
	addl $0x200000, %eax
	addl $8, %edi
	decl %ecx
	jnz 2b
	movl %cr4, %eax
	orl $TG_CR4_PAE, %eax
	movl %eax, %cr4
	movl $boot_pml4, %eax
	movl %eax, %cr3
	movl $TG_MSR_EFER, %ecx
	rdmsr
	orl $TG_EFER_LME, %eax
	wrmsr
	movl %cr0, %eax
	orl $(TG_CR0_PG | TG_CR0_PE), %eax
	movl %eax, %cr0
	movl %ebp, %edi
	ljmp $TG_SEL_CODE64, $1f
	.code64
1:	movl %esi, %esi			/* zero the upper halves */
	movl %edi, %edi

/* Long mode, identity paging; edi = entry kind, rsi = boot info. */
start64:
	cld
	movq %rdi, %r12
	movq %rsi, %r13
	movq $__bss_start, %rdi
	movq $__bss_end, %rcx
	subq %rdi, %rcx
	xorl %eax, %eax
	rep stosb
	movq $(boot_stack + TG_BOOT_STACK_SIZE), %rsp
	movq %r12, %rdi
	movq %r13, %rsi
	call tg_main
3:	cli
	hlt
	jmp 3b

/* ---------------------------------------------------------------- AP trampoline */
/* Copied to TG_TRAMPOLINE_ADDR and started there by SIPI (cs = TG_TRAMPOLINE_ADDR >> 4,
 * ip = 0). Real mode -> protected mode -> long mode with the BSP's page tables
 * (tg_ap_cr3), then ap_start64 in the image. */
	.section .text
	.code16
	.globl tg_trampoline_start
	.globl tg_trampoline_end
tg_trampoline_start:
	cli
	cld
	movw %cs, %ax
	movw %ax, %ds
	lgdtl (tramp_gdtr - tg_trampoline_start)
	movl %cr0, %eax
	orl $TG_CR0_PE, %eax
	movl %eax, %cr0
	ljmpl $TG_SEL_CODE32, $(TG_TRAMPOLINE_ADDR + tramp_pm32 - tg_trampoline_start)
	.code32
tramp_pm32:
	movl $TG_SEL_DATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl %eax, %fs
	movl %eax, %gs
	movl %cr4, %eax
	orl $TG_CR4_PAE, %eax
	movl %eax, %cr4
	movl tg_ap_cr3, %eax
	movl %eax, %cr3
	movl $TG_MSR_EFER, %ecx
	rdmsr
	orl $TG_EFER_LME, %eax
	wrmsr
	movl %cr0, %eax
	orl $(TG_CR0_PG | TG_CR0_PE), %eax
	movl %eax, %cr0
	ljmp $TG_SEL_CODE64, $ap_start64
	.balign 8
tramp_gdt:
	.quad 0
	.quad TG_GDT_CODE64
	.quad TG_GDT_CODE32
	.quad TG_GDT_DATA
tramp_gdtr:
	.word 4 * 8 - 1
	.long TG_TRAMPOLINE_ADDR + tramp_gdt - tg_trampoline_start
tg_trampoline_end:

	.code64
ap_start64:
	movl $1, %eax
	lock xaddl %eax, tg_ap_next
	cmpl $TG_MAX_APS, %eax
	jae 2f
	incl %eax
	imull $TG_AP_STACK_SIZE, %eax
	movl %eax, %eax
	leaq ap_stacks(%rax), %rsp
	call tg_ap_main
2:	cli
	hlt
	jmp 2b

/* ---------------------------------------------------------------- data */
	.section .data
	.balign 8
boot_gdt:
	.quad 0
	.quad TG_GDT_CODE64
	.quad TG_GDT_CODE32
	.quad TG_GDT_DATA
boot_gdtr:
	.word 4 * 8 - 1
	.long boot_gdt

	.globl tg_ap_cr3
	.balign 4
tg_ap_cr3:				/* the BSP's CR3, for the APs (below 4 GiB) */
	.long 0
	.globl tg_ap_next
tg_ap_next:				/* APs that took a stack */
	.long 0

/* Page tables, stacks: not cleared at start (the 32-bit path clears its page tables). */
	.section .noinit, "aw", @nobits
	.balign 4096
boot_pml4:
	.skip 4096
boot_pdpt:
	.skip 4096
boot_pd:
	.skip 4 * 4096
boot_stack:
	.skip TG_BOOT_STACK_SIZE
ap_stacks:
	.skip TG_MAX_APS * TG_AP_STACK_SIZE

/* ---------------------------------------------------------------- PVH note */
	.section .note.Xen, "a", @note
	.balign 4
	.long 4				/* namesz: "Xen" */
	.long 4				/* descsz */
	.long XEN_ELFNOTE_PHYS32_ENTRY
	.asciz "Xen"
	.balign 4
	.long pvh_start32
	.balign 4

	.section .note.GNU-stack, "", @progbits
