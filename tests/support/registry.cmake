# skiff_test_registry: LocalRegistry, a docker-registry on 127.0.0.1 holding the example
# images of scripts/images/build.sh (tests labelled `registry`).
add_library(skiff_test_registry STATIC ${CMAKE_CURRENT_LIST_DIR}/registry.cc)
target_include_directories(skiff_test_registry PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(skiff_test_registry PUBLIC skiff_common absl::status absl::statusor
                                                 absl::strings absl::time CURL::libcurl
                                                 skiff_test_shell)
