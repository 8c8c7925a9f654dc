skiff_add_test(NAME ingress_concurrency_gate_test SOURCES concurrency_gate_test.cc
               LIBS skiff_ingress_gate LABELS unit TIMEOUT 60)
