# gen2 guest side (sandbox/gen2/guest/):
#   skiff_gen2_control       the host↔guest control protocol: messages, rules, wire codec.
#                            Standard library only (skiff-init links it statically).
#   skiff_gen2_control_host  the host end for the shim (absl::Status, fd I/O)
set(_skiff_guest ${CMAKE_CURRENT_LIST_DIR}/guest)

add_library(skiff_gen2_control STATIC
  ${_skiff_guest}/control/messages.cc
  ${_skiff_guest}/control/validate.cc
  ${_skiff_guest}/control/codec.cc
)

add_library(skiff_gen2_control_host STATIC ${_skiff_guest}/control/host_channel.cc)
target_link_libraries(skiff_gen2_control_host PUBLIC skiff_gen2_control skiff_common absl::time)

# skiff-init: the guest's static PID 1. No abseil, no spdlog: the standard library, the
# control codec and the one-file fd owner.
add_executable(skiff-init
  ${_skiff_guest}/init/main.cc
  ${_skiff_guest}/init/options.cc
  ${_skiff_guest}/init/init.cc
  ${_skiff_guest}/init/control_channel.cc
  ${_skiff_guest}/init/kernel_fs.cc
  ${_skiff_guest}/init/modules.cc
  ${_skiff_guest}/init/root_fs.cc
  ${_skiff_guest}/init/network.cc
  ${_skiff_guest}/init/app.cc
  ${_skiff_guest}/init/supervisor.cc
  ${PROJECT_SOURCE_DIR}/sandbox/common/unique_fd.cc
)
target_link_libraries(skiff-init PRIVATE skiff_gen2_control)
# Stripped: it is copied into every initramfs and lives in guest memory (0.96 MB instead of 4.4 MB).
target_link_options(skiff-init PRIVATE -static -s)

# skiff_gen2_guest_images: the guest images the agent builds — the initramfs (newc cpio
# with skiff-init and a modular kernel's modules) and the erofs root image of an OCI
# image's layers.
add_library(skiff_gen2_guest_images STATIC
  ${_skiff_guest}/cpio_newc.cc
  ${_skiff_guest}/initramfs.cc
  ${_skiff_guest}/root_image.cc
)
target_link_libraries(skiff_gen2_guest_images PUBLIC skiff_common absl::status absl::statusor
                                                     absl::strings absl::cleanup)

add_executable(skiff-guest-image ${_skiff_guest}/image_tool_main.cc)
target_link_libraries(skiff-guest-image PRIVATE skiff_gen2_guest_images)
