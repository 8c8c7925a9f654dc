# skiff_test_http: a minimal blocking HTTP/1.1 client (keep-alive, Host, streaming, raw
# bytes after Upgrade) for ingress tests.
add_library(skiff_test_http STATIC ${CMAKE_CURRENT_LIST_DIR}/http_client.cc)
target_include_directories(skiff_test_http PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(skiff_test_http PUBLIC skiff_common absl::status absl::statusor
                                             absl::strings absl::time)
