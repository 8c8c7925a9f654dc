# skiff_test_skiffd: a real skiffd process (the built binary) with its own socket, state
# dir, image root, cgroup parent and IP pool, and a gRPC stub to it.
add_library(skiff_test_skiffd STATIC ${CMAKE_CURRENT_LIST_DIR}/skiffd_process.cc)
target_link_libraries(skiff_test_skiffd PUBLIC skiff_agent_proto skiff_common absl::time
                                               absl::strings)
