skiff_add_test(NAME ingress_concurrency_gate_test SOURCES concurrency_gate_test.cc
               LIBS skiff_ingress_gate LABELS unit TIMEOUT 60)
# h2c through the proxy with real HTTP/2 peers (nghttpd upstream; nghttp, h2load clients).
skiff_add_test(NAME ingress_proxy_h2c_interop_test SOURCES proxy_h2c_interop_test.cc
               LIBS skiff_ingress_proxy skiff_ingress_gate LABELS "unit;ingress" TIMEOUT 120)
