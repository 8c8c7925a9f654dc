# Services and the activator (engineer D). skiff_ingress_services: validation and the
# on-disk store; skiff_ingress_activator: scale from zero, idle scale-down (needs the
# gate and the metrics).
add_library(skiff_ingress_services STATIC service_validation.cc service_store.cc)
target_include_directories(skiff_ingress_services PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(skiff_ingress_services PUBLIC skiff_agent_instances skiff_agent_proto
                      skiff_common absl::status absl::statusor absl::strings absl::time)
target_compile_options(skiff_ingress_services PRIVATE -Wno-restrict)

if(TARGET skiff_ingress_gate AND TARGET skiff_ingress_metrics)
  add_library(skiff_ingress_activator STATIC activator.cc)
  target_include_directories(skiff_ingress_activator PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(skiff_ingress_activator PUBLIC skiff_ingress_services skiff_ingress_gate
                        skiff_ingress_metrics skiff_agent_proto absl::synchronization
                        absl::flat_hash_map absl::flat_hash_set Threads::Threads)
  target_compile_options(skiff_ingress_activator PRIVATE -Wno-restrict)
endif()
