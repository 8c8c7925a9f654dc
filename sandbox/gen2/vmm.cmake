# skiff_gen2_vmm: the VMM core — KVM, x86-64 boot (bzImage/ELF, zero page, MP table, page
# tables), the port-I/O and MMIO buses, COM1 and i8042, vCPU threads, seccomp, the Vmm
# orchestrator. skiff-vmm: the standalone driver (sandbox/gen2/vmm/main.cc).
add_library(skiff_gen2_vmm STATIC
  ${CMAKE_CURRENT_LIST_DIR}/devices/serial.cc
  ${CMAKE_CURRENT_LIST_DIR}/devices/i8042.cc
  ${CMAKE_CURRENT_LIST_DIR}/vmm/bus.cc
  ${CMAKE_CURRENT_LIST_DIR}/vmm/kvm.cc
  ${CMAKE_CURRENT_LIST_DIR}/vmm/cpuid.cc
  ${CMAKE_CURRENT_LIST_DIR}/vmm/msrs.cc
  ${CMAKE_CURRENT_LIST_DIR}/vmm/interrupt.cc
  ${CMAKE_CURRENT_LIST_DIR}/vmm/cmdline.cc
  ${CMAKE_CURRENT_LIST_DIR}/vmm/boot/bzimage.cc
  ${CMAKE_CURRENT_LIST_DIR}/vmm/boot/elf.cc
  ${CMAKE_CURRENT_LIST_DIR}/vmm/boot/zero_page.cc
  ${CMAKE_CURRENT_LIST_DIR}/vmm/boot/initramfs.cc
  ${CMAKE_CURRENT_LIST_DIR}/vmm/boot/mptable.cc
  ${CMAKE_CURRENT_LIST_DIR}/vmm/boot/x86_setup.cc
  ${CMAKE_CURRENT_LIST_DIR}/vmm/vcpu_runner.cc
  ${CMAKE_CURRENT_LIST_DIR}/vmm/seccomp_filter.cc
  ${CMAKE_CURRENT_LIST_DIR}/vmm/vmm.cc
  ${CMAKE_CURRENT_LIST_DIR}/vmm/virtio_slots.cc
)
target_link_libraries(skiff_gen2_vmm PUBLIC skiff_gen2_memory skiff_gen2_virtio skiff_common
                                            absl::status absl::statusor absl::strings
                                            absl::synchronization PkgConfig::SECCOMP spdlog::spdlog
                                            Threads::Threads)

add_executable(skiff-vmm ${CMAKE_CURRENT_LIST_DIR}/vmm/main.cc)
target_link_libraries(skiff-vmm PRIVATE skiff_gen2_vmm)

# The VMM's own memory counts against every microVM (goal: <= 5 MiB of RSS besides guest
# memory, Firecracker's bound). Debian's abseil is ~25 shared libraries whose mapped pages
# cost ~0.6 MiB of RSS per VMM; skiff-vmm links abseil's static archives instead (found
# before the shared ones, which --as-needed then drops).
file(GLOB _skiff_vmm_absl_archives /usr/lib/x86_64-linux-gnu/libabsl_*.a)
if(_skiff_vmm_absl_archives)
  target_link_libraries(skiff-vmm PRIVATE -Wl,--as-needed -Wl,--start-group
                                          ${_skiff_vmm_absl_archives} -Wl,--end-group)
endif()
