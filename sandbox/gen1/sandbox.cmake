# skiff_gen1: the gen1 sandbox (namespaces, rootfs, /dev, in-sandbox init, the
# orchestrator). Policy (seccomp, capabilities) comes from skiff_gen1_policy.
add_library(skiff_gen1 STATIC
  ${CMAKE_CURRENT_LIST_DIR}/child_error.cc
  ${CMAKE_CURRENT_LIST_DIR}/child_net.cc
  ${CMAKE_CURRENT_LIST_DIR}/dev.cc
  ${CMAKE_CURRENT_LIST_DIR}/etc_files.cc
  ${CMAKE_CURRENT_LIST_DIR}/init.cc
  ${CMAKE_CURRENT_LIST_DIR}/kernel_fs.cc
  ${CMAKE_CURRENT_LIST_DIR}/mount_point.cc
  ${CMAKE_CURRENT_LIST_DIR}/process.cc
  ${CMAKE_CURRENT_LIST_DIR}/rootfs.cc
  ${CMAKE_CURRENT_LIST_DIR}/sandbox.cc
)
target_link_libraries(skiff_gen1 PUBLIC skiff_common skiff_gen1_policy absl::status
                                        absl::statusor absl::strings)
