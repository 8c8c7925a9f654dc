# The ingress's HTTP/1.1 reverse proxy (Boost.Beast/Asio, C++20 coroutines).
pkg_check_modules(NGHTTP2 REQUIRED IMPORTED_TARGET libnghttp2)  # HPACK, for h2c routing
add_library(skiff_ingress_proxy STATIC http_proxy.cc proxy_h2c.cc proxy_headers.cc
                                       proxy_metrics.cc proxy_session.cc proxy_upstream_pool.cc)
target_include_directories(skiff_ingress_proxy PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(skiff_ingress_proxy PUBLIC skiff_common absl::status absl::statusor
                      absl::strings absl::synchronization absl::time absl::any_invocable
                      absl::flat_hash_map absl::flat_hash_set
                      Boost::headers PkgConfig::NGHTTP2 Threads::Threads)
if(TARGET skiff_ingress_metrics)
  target_link_libraries(skiff_ingress_proxy PUBLIC skiff_ingress_metrics)
  target_compile_definitions(skiff_ingress_proxy PRIVATE SKIFF_PROXY_HAVE_METRICS=1)
endif()
