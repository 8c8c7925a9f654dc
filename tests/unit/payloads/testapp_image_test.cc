// The `testapp` example image: scripts/images/build.sh --only testapp, pushed to a real
// docker-registry by LocalRegistry::PushTestApp, read back through the distribution API.

#include <string>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/registry.h"
#include "tests/support/status_matchers.h"

namespace skiff::testing {
namespace {

TEST(TestAppImageTest, PushedWithItsEntrypointAndOneLayerOverBusybox) {
  SKIFF_ASSERT_OK_AND_ASSIGN(auto registry, LocalRegistry::Start());
  SKIFF_ASSERT_OK(registry->PushTestApp());
  SKIFF_ASSERT_OK_AND_ASSIGN(auto manifest,
                             registry->Get("/v2/skiff/testapp/manifests/latest",
                                           {"Accept: application/vnd.oci.image.manifest.v1+json"}));
  ASSERT_EQ(manifest.status, 200) << manifest.body;
  auto m = nlohmann::json::parse(manifest.body);
  ASSERT_EQ(m["layers"].size(), 2u) << manifest.body;  // busybox base + the binary
  EXPECT_GT(m["layers"][1]["size"].get<int64_t>(), 100 * 1024) << "the static binary's layer";
  SKIFF_ASSERT_OK_AND_ASSIGN(auto config, registry->Get("/v2/skiff/testapp/blobs/" +
                                                        m["config"]["digest"].get<std::string>()));
  ASSERT_EQ(config.status, 200);
  auto c = nlohmann::json::parse(config.body);
  EXPECT_EQ(c["config"]["Entrypoint"], nlohmann::json::array({"/skiff-testapp"}));
  EXPECT_EQ(c["config"]["Env"], nlohmann::json::array({"PATH=/bin", "PORT=8080"}));
  EXPECT_EQ(c["architecture"], "amd64");
  // The same binary pushed again gives the same digest (reproducible layout).
  SKIFF_ASSERT_OK(registry->PushTestApp());
  SKIFF_ASSERT_OK_AND_ASSIGN(auto again,
                             registry->Get("/v2/skiff/testapp/manifests/latest",
                                           {"Accept: application/vnd.oci.image.manifest.v1+json"}));
  EXPECT_EQ(again.headers["docker-content-digest"], manifest.headers["docker-content-digest"]);
}

}  // namespace
}  // namespace skiff::testing
