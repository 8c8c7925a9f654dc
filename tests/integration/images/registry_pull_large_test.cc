// A ~200 MB two-layer image through a real docker-registry: checks that large blobs stream
// correctly (content, sizes) and prints the pull + unpack time.

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <random>

#include "images/digest.h"
#include "images/image_store.h"
#include "tests/integration/images/local_registry.h"
#include "tests/support/status_matchers.h"
#include "tests/unit/images/tar_builder.h"

namespace skiff::images {
namespace {

using ::skiff::images::testing::LocalRegistry;
using ::skiff::images::testing::PushImage;
using ::skiff::images::testing::TarBuilder;
using ::skiff::images::testing::TarCompression;
using ::skiff::images::testing::TempDir;
using ::skiff::images::testing::TestLayer;

// Half random (incompressible), half text: roughly what binaries and data look like.
std::string Payload(size_t size, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(size, '\0');
  for (size_t i = 0; i + 8 <= size / 2; i += 8) {
    uint64_t v = rng();
    memcpy(&s[i], &v, 8);
  }
  for (size_t i = size / 2; i < size; ++i) s[i] = "skiff layer text\n"[i % 17];
  return s;
}

TestLayer BigLayer(int index, int files, size_t file_size) {
  TarBuilder plain(TarCompression::kNone), packed(TarCompression::kGzip);
  for (int f = 0; f < files; ++f) {
    std::string name = "data" + std::to_string(index) + "/file" + std::to_string(f);
    std::string payload = Payload(file_size, static_cast<uint32_t>(index * 1000 + f));
    plain.File(name, payload);
    packed.File(name, payload);
  }
  return TestLayer{plain.Finish(), packed.Finish(), "application/vnd.oci.image.layer.v1.tar+gzip"};
}

TEST(RegistryPullLargeTest, TwoHundredMegabytesInTwoLayers) {
  SKIFF_ASSERT_OK_AND_ASSIGN(auto registry, LocalRegistry::Start());
  std::vector<TestLayer> layers = {BigLayer(0, 10, 10 << 20), BigLayer(1, 10, 10 << 20)};
  uint64_t compressed = layers[0].blob.size() + layers[1].blob.size();
  SKIFF_ASSERT_OK(PushImage(registry->base_url(), "big", "v1", layers));
  TempDir dir;
  StoreOptions o;
  o.root = dir.path() + "/store";
  o.insecure_registries = {registry->host_port()};
  SKIFF_ASSERT_OK_AND_ASSIGN(auto store, ImageStore::Open(o));
  auto start = std::chrono::steady_clock::now();
  SKIFF_ASSERT_OK_AND_ASSIGN(Image img, store->Pull(registry->host_port() + "/big:v1", nullptr));
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "pull+unpack of " << (compressed >> 20)
            << " MiB compressed / 200 MiB unpacked: " << s << " s\n";
  ASSERT_EQ(img.layer_dirs.size(), 2u);
  EXPECT_EQ(img.size_bytes, compressed);
  for (int layer = 0; layer < 2; ++layer) {
    for (int f : {0, 9}) {
      std::string path =
          img.layer_dirs[1 - layer] + "/data" + std::to_string(layer) + "/file" + std::to_string(f);
      std::ifstream in(path, std::ios::binary);
      std::string got((std::istreambuf_iterator<char>(in)), {});
      EXPECT_EQ(Sha256Digest(got),
                Sha256Digest(Payload(10 << 20, static_cast<uint32_t>(layer * 1000 + f))))
          << path;
    }
  }
}

}  // namespace
}  // namespace skiff::images
