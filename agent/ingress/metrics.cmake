# Metrics registry (Prometheus text exposition) and the admin HTTP endpoint.
add_library(skiff_ingress_metrics STATIC metrics.cc admin_server.cc)
target_include_directories(skiff_ingress_metrics PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(skiff_ingress_metrics PUBLIC skiff_common absl::status absl::statusor
                      absl::strings absl::synchronization absl::hash absl::flat_hash_map
                      absl::flat_hash_set absl::span Boost::headers Threads::Threads)
