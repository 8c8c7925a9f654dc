# The ingress end to end with real instances of the test app (label `ingress`).
skiff_add_test(NAME ingress_e2e_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/ingress_e2e_test.cc
               LIBS skiff_test_skiffd skiff_test_registry skiff_host_state skiff_test_http
                    absl::strings absl::time absl::synchronization
               LABELS "ingress;privileged;registry" TIMEOUT 300)
add_dependencies(ingress_e2e_test skiffd skiff-shim skiff-testapp)
