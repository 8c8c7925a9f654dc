skiff_add_test(NAME ingress_metrics_test SOURCES metrics_test.cc
               LIBS skiff_ingress_metrics LABELS unit TIMEOUT 60)
