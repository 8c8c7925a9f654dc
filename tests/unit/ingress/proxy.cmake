# The HTTP reverse proxy against in-test upstream servers and a fake Router (loopback only).
skiff_add_test(NAME ingress_http_proxy_test SOURCES http_proxy_test.cc
               LIBS skiff_ingress_proxy skiff_ingress_metrics LABELS "unit;ingress" TIMEOUT 120)
skiff_add_test(NAME ingress_proxy_headers_test SOURCES proxy_headers_test.cc
               LIBS skiff_ingress_proxy LABELS "unit;ingress" TIMEOUT 30)
skiff_add_test(NAME ingress_proxy_h2c_test SOURCES proxy_h2c_test.cc
               LIBS skiff_ingress_proxy LABELS "unit;ingress" TIMEOUT 30)
# Full-duplex bodies (echo as it reads, early answers) and close-on-exec fds (loopback only).
skiff_add_test(NAME ingress_proxy_duplex_test SOURCES proxy_duplex_test.cc
               LIBS skiff_ingress_proxy LABELS "unit;ingress" TIMEOUT 120)
# The proxy's pool of idle upstream connections (loopback only).
skiff_add_test(NAME ingress_upstream_pool_test SOURCES upstream_pool_test.cc
               LIBS skiff_ingress_proxy LABELS "unit;ingress" TIMEOUT 30)
# When a proxy thread with busy polling polls and when it backs off (driven by fake times).
skiff_add_test(NAME ingress_busy_poll_test SOURCES busy_poll_test.cc
               LIBS skiff_ingress_proxy LABELS "unit;ingress" TIMEOUT 30)
