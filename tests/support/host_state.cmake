# skiff_host_state: before/after snapshots of host mounts, cgroups, netns and links, for
# leak checks in tests.
add_library(skiff_host_state STATIC ${CMAKE_CURRENT_LIST_DIR}/host_state.cc)
target_link_libraries(skiff_host_state PUBLIC skiff_common absl::status absl::statusor
                                              absl::strings)
