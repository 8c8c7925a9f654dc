// The example images of scripts/images/build.sh, pushed to a real docker-registry through
// LocalRegistry: every image is listed and its manifest, config and layers are fetchable
// and verify; the shared base layers are shared; the configs carry the documented
// entrypoints; multilayer unpacks (with umoci, an independent implementation) to the tree
// documented in docs/images-examples.md; a push from the cache takes seconds; builds are
// reproducible.

#include <openssl/evp.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "sandbox/common/file_io.h"
#include "tests/support/registry.h"
#include "tests/support/status_matchers.h"

namespace skiff::testing {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;
using Json = nlohmann::json;

constexpr char kOciManifest[] = "application/vnd.oci.image.manifest.v1+json";
constexpr char kDockerManifest[] = "application/vnd.docker.distribution.manifest.v2+json";
const std::vector<std::string> kImages = {
    "hello", "sigterm-handler", "sigterm-ignorer", "forker", "memhog", "multilayer", "job"};

std::string Sha256Digest(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) absl::StrAppend(&hex, absl::Hex(md[i], absl::kZeroPad2));
  return "sha256:" + hex;
}

Json ParseJson(const std::string& text) {
  return Json::parse(text, nullptr, /*allow_exceptions=*/false);
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

class ExampleImagesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto registry = LocalRegistry::Start();
    ASSERT_THAT(registry, IsOk());
    registry_ = std::move(registry).value().release();
    const auto start = std::chrono::steady_clock::now();
    ASSERT_THAT(registry_->PushExampleImages(kImages), IsOk());
    std::printf("build (or cache) + push of %zu example images: %.2f s\n", kImages.size(),
                SecondsSince(start));
  }
  static void TearDownTestSuite() {
    delete registry_;
    registry_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(registry_, nullptr) << "registry did not start"; }

  // Fetches and verifies the manifest of skiff/<name>:<tag>; returns it parsed.
  static Json Manifest(const std::string& name, const std::string& tag = "latest",
                       const std::string& accept = kOciManifest) {
    absl::StatusOr<HttpResponse> r =
        registry_->Get(absl::StrCat("/v2/skiff/", name, "/manifests/", tag), {"Accept: " + accept});
    EXPECT_THAT(r, IsOk());
    if (!r.ok()) return Json();
    EXPECT_EQ(r->status, 200) << name << ":" << tag << " " << r->body;
    EXPECT_EQ(r->headers["content-type"], accept) << name;
    EXPECT_EQ(r->headers["docker-content-digest"], Sha256Digest(r->body)) << name;
    Json j = ParseJson(r->body);
    EXPECT_TRUE(j.is_object()) << r->body;
    return j;
  }

  // Blobs are repository-scoped: fetched through skiff/<name>.
  static Json Config(const std::string& name, const Json& manifest) {
    const std::string digest = manifest["config"]["digest"].get<std::string>();
    absl::StatusOr<HttpResponse> r = registry_->Get("/v2/skiff/" + name + "/blobs/" + digest);
    EXPECT_THAT(r, IsOk());
    if (!r.ok()) return Json();
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(Sha256Digest(r->body), digest);
    EXPECT_EQ(r->body.size(), manifest["config"]["size"].get<size_t>());
    return ParseJson(r->body);
  }

  static std::vector<std::string> LayerDigests(const Json& manifest) {
    std::vector<std::string> out;
    for (const Json& l : manifest["layers"]) out.push_back(l["digest"].get<std::string>());
    return out;
  }

  static LocalRegistry* registry_;
};

LocalRegistry* ExampleImagesTest::registry_ = nullptr;

TEST_F(ExampleImagesTest, EveryImageIsListedAndItsBlobsVerify) {
  for (const std::string& name : kImages) {
    SCOPED_TRACE(name);
    SKIFF_ASSERT_OK_AND_ASSIGN(HttpResponse tags,
                               registry_->Get("/v2/skiff/" + name + "/tags/list"));
    ASSERT_EQ(tags.status, 200) << tags.body;
    Json t = ParseJson(tags.body);
    ASSERT_TRUE(t.is_object()) << tags.body;
    EXPECT_EQ(t["name"], "skiff/" + name);
    EXPECT_THAT(t["tags"].get<std::vector<std::string>>(), Contains("latest"));

    Json m = Manifest(name);
    ASSERT_TRUE(m.is_object());
    EXPECT_EQ(m["schemaVersion"], 2);
    EXPECT_EQ(m["mediaType"], kOciManifest);
    Json config = Config(name, m);
    ASSERT_TRUE(config.is_object());
    EXPECT_EQ(config["architecture"], "amd64");
    EXPECT_EQ(config["os"], "linux");
    ASSERT_EQ(config["rootfs"]["diff_ids"].size(), m["layers"].size());
    for (const Json& layer : m["layers"]) {
      EXPECT_EQ(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
      const std::string digest = layer["digest"].get<std::string>();
      SKIFF_ASSERT_OK_AND_ASSIGN(HttpResponse head,
                                 registry_->Head("/v2/skiff/" + name + "/blobs/" + digest));
      EXPECT_EQ(head.status, 200) << digest;
      EXPECT_EQ(head.headers["content-length"], std::to_string(layer["size"].get<uint64_t>()));
      // The registry stores it where BlobPath says (tests corrupt blobs there).
      EXPECT_TRUE(std::filesystem::is_regular_file(registry_->BlobPath(digest))) << digest;
    }
  }
}

TEST_F(ExampleImagesTest, BaseLayersAreSharedByteForByte) {
  Json hello = Manifest("hello");
  ASSERT_TRUE(hello.is_object());
  const std::vector<std::string> hello_layers = LayerDigests(hello);
  ASSERT_EQ(hello_layers.size(), 2u);  // busybox, /www
  for (const std::string& name : kImages) {
    SCOPED_TRACE(name);
    std::vector<std::string> layers = LayerDigests(Manifest(name));
    ASSERT_GE(layers.size(), 2u);
    EXPECT_EQ(layers[0], hello_layers[0]);  // busybox base
    if (name != "job") {
      EXPECT_EQ(layers[1], hello_layers[1]);  // /www
    }
  }
  EXPECT_EQ(LayerDigests(Manifest("multilayer")).size(), 5u);
}

TEST_F(ExampleImagesTest, ConfigsCarryTheDocumentedEntrypoints) {
  const std::map<std::string, std::vector<std::string>> entrypoints = {
      {"hello", {"/bin/sh", "-c", "exec httpd -f -v -p ${PORT:-8080} -h /www"}},
      {"sigterm-handler", {"/app/run.sh"}},
      {"sigterm-ignorer", {"/app/run.sh"}},
      {"forker", {"/app/run.sh"}},
      {"memhog", {"/app/run.sh"}},
      {"multilayer", {"/bin/sh", "-c", "exec httpd -f -v -p ${PORT:-8080} -h /data"}},
      {"job", {"/app/job.sh"}},
  };
  for (const auto& [name, entrypoint] : entrypoints) {
    SCOPED_TRACE(name);
    Json config = Config(name, Manifest(name));
    ASSERT_TRUE(config.is_object());
    EXPECT_EQ(config["config"]["Entrypoint"].get<std::vector<std::string>>(), entrypoint);
    EXPECT_FALSE(config["config"].contains("Cmd"));
    EXPECT_THAT(config["config"]["Env"].get<std::vector<std::string>>(), ElementsAre("PATH=/bin"));
    EXPECT_EQ(config["config"]["WorkingDir"], "/");
  }
}

TEST_F(ExampleImagesTest, HelloIsAlsoPushedAsDockerSchema2) {
  Json oci = Manifest("hello");
  Json docker = Manifest("hello", "docker", kDockerManifest);
  ASSERT_TRUE(docker.is_object());
  EXPECT_EQ(docker["mediaType"], kDockerManifest);
  EXPECT_EQ(docker["config"]["mediaType"], "application/vnd.docker.container.image.v1+json");
  for (const Json& layer : docker["layers"]) {
    EXPECT_EQ(layer["mediaType"], "application/vnd.docker.image.rootfs.diff.tar.gzip");
  }
  // Same layer blobs, just described in the Docker media types.
  EXPECT_EQ(LayerDigests(docker), LayerDigests(oci));
}

// multiarch is an OCI index: arm64/v8 listed first, then amd64 = hello's manifest.
TEST_F(ExampleImagesTest, MultiarchIsAnIndexWhoseAmd64EntryIsHello) {
  SKIFF_ASSERT_OK(registry_->PushExampleImages({"multiarch"}));
  constexpr char kIndex[] = "application/vnd.oci.image.index.v1+json";
  SKIFF_ASSERT_OK_AND_ASSIGN(HttpResponse r, registry_->Get("/v2/skiff/multiarch/manifests/latest",
                                                            {std::string("Accept: ") + kIndex}));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.headers["content-type"], kIndex);
  EXPECT_EQ(r.headers["docker-content-digest"], Sha256Digest(r.body));
  Json index = ParseJson(r.body);
  ASSERT_TRUE(index.is_object()) << r.body;
  EXPECT_EQ(index["mediaType"], kIndex);
  ASSERT_EQ(index["manifests"].size(), 2u);
  const Json& arm = index["manifests"][0];
  const Json& amd = index["manifests"][1];
  EXPECT_EQ(arm["platform"]["architecture"], "arm64");
  EXPECT_EQ(arm["platform"]["variant"], "v8");
  EXPECT_EQ(amd["platform"]["architecture"], "amd64");
  EXPECT_EQ(amd["platform"]["os"], "linux");

  SKIFF_ASSERT_OK_AND_ASSIGN(HttpResponse hello,
                             registry_->Head("/v2/skiff/hello/manifests/latest",
                                             {std::string("Accept: ") + kOciManifest}));
  EXPECT_EQ(amd["digest"], hello.headers["docker-content-digest"]);

  // Both entries are fetchable by digest from the multiarch repository.
  Json arm_manifest = Manifest("multiarch", arm["digest"].get<std::string>());
  Json amd_manifest = Manifest("multiarch", amd["digest"].get<std::string>());
  ASSERT_TRUE(arm_manifest.is_object());
  ASSERT_TRUE(amd_manifest.is_object());
  EXPECT_EQ(LayerDigests(arm_manifest), LayerDigests(amd_manifest));
  EXPECT_EQ(Config("multiarch", arm_manifest)["architecture"], "arm64");
  EXPECT_EQ(Config("multiarch", amd_manifest)["architecture"], "amd64");
}

// Pulls multilayer with skopeo and unpacks it with umoci (independent implementations of
// the OCI whiteout rules) and compares the result with docs/images-examples.md.
TEST_F(ExampleImagesTest, MultilayerUnpacksToTheDocumentedTree) {
  char tmpl[] = "/tmp/skiff-multilayer-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string tmp = tmpl;
  absl::Cleanup remove_tmp = [&] {
    std::error_code ec;
    std::filesystem::remove_all(tmp, ec);
  };
  SKIFF_ASSERT_OK(
      WriteNewFile(tmp + "/policy.json", R"({"default":[{"type":"insecureAcceptAnything"}]})"));
  SKIFF_ASSERT_OK(RunCommand(
      {"skopeo", "--policy", tmp + "/policy.json", "copy", "--quiet", "--src-tls-verify=false",
       "docker://" + registry_->Reference("multilayer"), "oci:" + tmp + "/layout:latest"},
      tmp + "/skopeo.log"));
  SKIFF_ASSERT_OK(RunCommand(
      {"umoci", "unpack", "--image", tmp + "/layout:latest", tmp + "/bundle"}, tmp + "/umoci.log"));
  const std::string root = tmp + "/bundle/rootfs";
  namespace fs = std::filesystem;
  auto names = [&](const std::string& dir) {
    std::set<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(root + dir, ec)) out.insert(e.path().filename());
    EXPECT_FALSE(ec) << dir << ": " << ec.message();
    return out;
  };
  auto content = [&](const std::string& path) {
    absl::StatusOr<std::string> s = ReadFileToString(root + path);
    return s.ok() ? *s : "<" + std::string(s.status().message()) + ">";
  };
  auto inode = [&](const std::string& path) {
    struct stat st {};
    EXPECT_EQ(lstat((root + path).c_str(), &st), 0) << path;
    return st.st_ino;
  };

  EXPECT_THAT(names("/data"),
              UnorderedElementsAre("keep.txt", "replaced.txt", "resurrected.txt", "late.txt"));
  EXPECT_EQ(content("/data/keep.txt"), "keep v1\n");
  EXPECT_EQ(content("/data/replaced.txt"), "replaced v3\n");
  EXPECT_EQ(content("/data/resurrected.txt"), "resurrected v5\n");
  EXPECT_EQ(content("/data/late.txt"), "late\n");

  EXPECT_THAT(names("/opaque"), UnorderedElementsAre("new.txt"));
  EXPECT_EQ(content("/opaque/new.txt"), "opaque new\n");

  EXPECT_THAT(names("/hard"),
              UnorderedElementsAre("original.txt", "link.txt", "second.txt", "second-link.txt"));
  EXPECT_EQ(content("/hard/original.txt"), "hardlinked v1\n");
  EXPECT_EQ(inode("/hard/original.txt"), inode("/hard/link.txt"));
  EXPECT_EQ(content("/hard/second.txt"), "hardlinked v5\n");
  EXPECT_EQ(inode("/hard/second.txt"), inode("/hard/second-link.txt"));
  EXPECT_NE(inode("/hard/original.txt"), inode("/hard/second.txt"));

  EXPECT_THAT(names("/links"), UnorderedElementsAre("relative", "absolute", "dangling"));
  EXPECT_EQ(fs::read_symlink(root + "/links/relative"), "../data/keep.txt");
  EXPECT_EQ(fs::read_symlink(root + "/links/absolute"), "/data/keep.txt");
  EXPECT_EQ(fs::read_symlink(root + "/links/dangling"), "/data/deleted.txt");

  EXPECT_EQ(content("/www/index.html"), "hello from skiff\n");
  EXPECT_TRUE(fs::is_regular_file(root + "/bin/busybox"));
  EXPECT_EQ(fs::read_symlink(root + "/bin/sh"), "busybox");
  EXPECT_TRUE(fs::is_directory(root + "/tmp"));
  EXPECT_EQ(fs::status(root + "/tmp").permissions() & fs::perms::sticky_bit, fs::perms::sticky_bit);

  // No whiteout marker survives anywhere in the tree.
  std::vector<std::string> whiteouts;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.path().filename().string().starts_with(".wh.")) whiteouts.push_back(e.path());
  }
  EXPECT_THAT(whiteouts, IsEmpty());
}

TEST_F(ExampleImagesTest, PushFromTheCacheToAFreshRegistryTakesSeconds) {
  SKIFF_ASSERT_OK_AND_ASSIGN(auto fresh, LocalRegistry::Start());
  const auto start = std::chrono::steady_clock::now();
  SKIFF_ASSERT_OK(fresh->PushExampleImages(kImages));
  const double seconds = SecondsSince(start);
  std::printf("push of %zu cached example images to a fresh registry: %.2f s\n", kImages.size(),
              seconds);
  EXPECT_LT(seconds, 20.0);
  for (const std::string& name : kImages) {
    SKIFF_ASSERT_OK_AND_ASSIGN(HttpResponse r,
                               fresh->Head("/v2/skiff/" + name + "/manifests/latest",
                                           {std::string("Accept: ") + kOciManifest}));
    EXPECT_EQ(r.status, 200) << name;
  }
}

// A build from an empty cache gives byte-identical images (same manifest digests).
TEST_F(ExampleImagesTest, BuildsAreReproducible) {
  char tmpl[] = "/tmp/skiff-image-cache-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string cache = tmpl;
  const char* old = getenv("SKIFF_CACHE");
  const std::string old_value = old != nullptr ? old : "";
  absl::Cleanup restore = [&] {
    if (old != nullptr) {
      setenv("SKIFF_CACHE", old_value.c_str(), 1);
    } else {
      unsetenv("SKIFF_CACHE");
    }
    std::error_code ec;
    std::filesystem::remove_all(cache, ec);
  };
  setenv("SKIFF_CACHE", cache.c_str(), 1);
  SKIFF_ASSERT_OK_AND_ASSIGN(auto fresh, LocalRegistry::Start());
  SKIFF_ASSERT_OK(fresh->PushExampleImages({"hello", "multilayer"}));
  for (const std::string name : {"hello", "multilayer"}) {
    const std::string path = absl::StrCat("/v2/skiff/", name, "/manifests/latest");
    const std::vector<std::string> accept = {std::string("Accept: ") + kOciManifest};
    SKIFF_ASSERT_OK_AND_ASSIGN(HttpResponse a, registry_->Head(path, accept));
    SKIFF_ASSERT_OK_AND_ASSIGN(HttpResponse b, fresh->Head(path, accept));
    EXPECT_EQ(a.headers["docker-content-digest"], b.headers["docker-content-digest"]) << name;
    EXPECT_THAT(a.headers["docker-content-digest"], HasSubstr("sha256:"));
  }
}

}  // namespace
}  // namespace skiff::testing
