# Debian's prometheus server scrapes an AdminServer on loopback and reads the series back.
skiff_add_test(NAME ingress_prometheus_scrape_test SOURCES prometheus_scrape_test.cc
               LIBS skiff_ingress_metrics CURL::libcurl nlohmann_json::nlohmann_json
                    absl::cleanup absl::time
               LABELS "ingress" TIMEOUT 120)
