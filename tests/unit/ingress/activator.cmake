# Services (validation, store) and the activator, with a fake InstanceLauncher.
skiff_add_test(NAME ingress_service_test SOURCES service_test.cc
               LIBS skiff_ingress_services LABELS unit TIMEOUT 60)
if(TARGET skiff_ingress_activator)
  skiff_add_test(NAME ingress_activator_test SOURCES activator_test.cc
                 LIBS skiff_ingress_activator LABELS unit TIMEOUT 90)
endif()
