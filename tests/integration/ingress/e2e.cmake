# The ingress end to end with real instances of the test app (label `ingress`), once with
# gen1 instances (ingress_e2e_test) and once with gen2 ones through fake-vmm
# (ingress_e2e_gen2_test: the same binary and cases, filtered by GTEST_FILTER).
skiff_add_test(NAME ingress_e2e_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/ingress_e2e_test.cc
               LIBS skiff_test_skiffd skiff_test_registry skiff_host_state skiff_test_http
                    absl::strings absl::time absl::synchronization
               LABELS "ingress;privileged;registry" TIMEOUT 300)
target_compile_definitions(ingress_e2e_test PRIVATE
  SKIFF_FAKE_VMM="${SKIFF_FAKE_VMM_PATH}"
  SKIFF_TESTGUEST_KERNEL="${SKIFF_TESTGUEST_BZIMAGE}")
add_dependencies(ingress_e2e_test skiffd skiff-shim skiff-testapp skiff-fake-vmm skiff-testguest)
set_property(TEST ingress_e2e_test APPEND PROPERTY ENVIRONMENT "GTEST_FILTER=*/Gen1")

add_test(NAME ingress_e2e_gen2_test COMMAND ingress_e2e_test)
set_tests_properties(ingress_e2e_gen2_test PROPERTIES
  LABELS "ingress;privileged;registry" TIMEOUT 300
  ENVIRONMENT "GTEST_FILTER=*/Gen2;SKIFF_BUILD_DIR=${PROJECT_BINARY_DIR};SKIFF_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
