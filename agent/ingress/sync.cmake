# skiff_ingress_sync: the ingress's view of the instance table (pools follow READY /
# STOPPING / EXITED, boosts end on time, drain hook, gauges) and the activator's launcher
# over the InstanceController.
if(TARGET skiff_ingress_gate AND TARGET skiff_ingress_metrics AND TARGET skiff_ingress_activator)
  add_library(skiff_ingress_sync STATIC instance_sync.cc controller_launcher.cc)
  target_include_directories(skiff_ingress_sync PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(skiff_ingress_sync PUBLIC skiff_ingress_gate skiff_ingress_metrics
                        skiff_ingress_activator skiff_ingress_throttle skiff_agent_instances)
endif()
