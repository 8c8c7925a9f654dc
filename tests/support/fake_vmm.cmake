# fake-vmm: a stand-in for skiff-vmm on hosts whose /dev/kvm cannot boot Linux (see
# fake_vmm.sh.in), and skiff-tap-guest, which gives it the guest's network. Tests pass
# --gen2-vmm=${SKIFF_FAKE_VMM_PATH} to skiffd and depend on the skiff-fake-vmm target.
add_executable(skiff-tap-guest ${CMAKE_CURRENT_LIST_DIR}/tap_guest.cc)
target_link_libraries(skiff-tap-guest PRIVATE skiff_gen2_virtio skiff_common)

set(SKIFF_FAKE_VMM_PATH ${PROJECT_BINARY_DIR}/tests/support/fake-vmm
    CACHE INTERNAL "fake-vmm, the skiff-vmm stand-in for hosts without hardware virtualization")
file(READ ${CMAKE_CURRENT_LIST_DIR}/fake_vmm.sh.in _fake_vmm)
# file(READ) is not a configure dependency by itself: an edit must regenerate fake-vmm.
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${CMAKE_CURRENT_LIST_DIR}/fake_vmm.sh.in)
string(REPLACE "@SKIFF_INIT_PATH@" "$<TARGET_FILE:skiff-init>" _fake_vmm "${_fake_vmm}")
string(REPLACE "@TAP_GUEST_PATH@" "$<TARGET_FILE:skiff-tap-guest>" _fake_vmm "${_fake_vmm}")
file(GENERATE OUTPUT ${SKIFF_FAKE_VMM_PATH} CONTENT "${_fake_vmm}"
     FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE)
add_custom_target(skiff-fake-vmm DEPENDS skiff-init skiff-tap-guest)
