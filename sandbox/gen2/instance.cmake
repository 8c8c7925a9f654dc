# skiff_gen2_sandbox: the host side of a gen2 instance, for the shim: root image, cgroup,
# tap, the skiff-vmm process, and the control protocol with skiff-init in the guest.
add_library(skiff_gen2_sandbox STATIC ${CMAKE_CURRENT_LIST_DIR}/instance/gen2_sandbox.cc)
target_link_libraries(skiff_gen2_sandbox PUBLIC skiff_common skiff_gen2_control_host
                                                skiff_gen2_guest_images skiff_gen2_virtio skiff_gen1)
