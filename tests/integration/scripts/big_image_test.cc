// The ~300 MB pull-benchmark image: two incompressible data layers on the shared base,
// pushed to a real docker-registry.

#include <chrono>
#include <cstdio>
#include <string>

#include "nlohmann/json.hpp"
#include "tests/support/registry.h"
#include "tests/support/status_matchers.h"

namespace skiff::testing {
namespace {

TEST(BigImageTest, IsAbout300MBInTwoIncompressibleLayers) {
  SKIFF_ASSERT_OK_AND_ASSIGN(auto registry, LocalRegistry::Start());
  const auto start = std::chrono::steady_clock::now();
  SKIFF_ASSERT_OK(registry->PushExampleImages({"big", "hello"}));
  std::printf("build (or cache) + push of big: %.2f s\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());

  const std::vector<std::string> accept = {"Accept: application/vnd.oci.image.manifest.v1+json"};
  SKIFF_ASSERT_OK_AND_ASSIGN(HttpResponse r,
                             registry->Get("/v2/skiff/big/manifests/latest", accept));
  ASSERT_EQ(r.status, 200) << r.body;
  nlohmann::json m = nlohmann::json::parse(r.body, nullptr, false);
  ASSERT_TRUE(m.is_object()) << r.body;
  ASSERT_EQ(m["layers"].size(), 4u);  // busybox, /www, data 1, data 2
  uint64_t total = 0;
  for (const auto& layer : m["layers"]) total += layer["size"].get<uint64_t>();
  std::printf("big: %llu bytes compressed in %zu layers\n", static_cast<unsigned long long>(total),
              m["layers"].size());
  EXPECT_GT(total, 300'000'000u);
  EXPECT_LT(total, 340'000'000u);
  // Keystream data does not compress: each data layer is at least its 150 MiB payload.
  for (int i : {2, 3}) {
    EXPECT_GE(m["layers"][i]["size"].get<uint64_t>(), 150u << 20) << i;
    SKIFF_ASSERT_OK_AND_ASSIGN(
        HttpResponse head,
        registry->Head("/v2/skiff/big/blobs/" + m["layers"][i]["digest"].get<std::string>()));
    EXPECT_EQ(head.status, 200);
  }
  // It shares its base layers with hello.
  SKIFF_ASSERT_OK_AND_ASSIGN(HttpResponse h,
                             registry->Get("/v2/skiff/hello/manifests/latest", accept));
  nlohmann::json hello = nlohmann::json::parse(h.body, nullptr, false);
  ASSERT_TRUE(hello.is_object()) << h.body;
  EXPECT_EQ(m["layers"][0]["digest"], hello["layers"][0]["digest"]);
  EXPECT_EQ(m["layers"][1]["digest"], hello["layers"][1]["digest"]);
}

}  // namespace
}  // namespace skiff::testing
