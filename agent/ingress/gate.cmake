# The concurrency gate and Host routing (ServicePool, ServiceRouter).
add_library(skiff_ingress_gate STATIC concurrency_gate.cc)
target_include_directories(skiff_ingress_gate PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(skiff_ingress_gate
                      PUBLIC skiff_ingress_throttle absl::any_invocable absl::flat_hash_map
                             absl::status absl::statusor absl::strings absl::synchronization
                             absl::time Threads::Threads)
