skiff_add_test(NAME ingress_metrics_test SOURCES metrics_test.cc
               LIBS skiff_ingress_metrics LABELS unit TIMEOUT 60)
skiff_add_test(NAME ingress_admin_server_test SOURCES admin_server_test.cc
               LIBS skiff_ingress_metrics LABELS unit TIMEOUT 60)
