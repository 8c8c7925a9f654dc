# skiff_gen1_policy: what an instance may do once it runs — the seccomp policy and the
# capability set. Prepared in the parent, applied (async-signal-safe) before execve.
add_library(skiff_gen1_policy STATIC
  ${CMAKE_CURRENT_LIST_DIR}/capabilities.cc
  ${CMAKE_CURRENT_LIST_DIR}/seccomp_policy.cc
)
target_link_libraries(skiff_gen1_policy PUBLIC skiff_common absl::status absl::statusor
                                               absl::strings PkgConfig::SECCOMP PkgConfig::LIBCAP)
