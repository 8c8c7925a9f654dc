// Pulls from a real docker-registry on 127.0.0.1: multi-layer images with whiteouts
// (checked file by file and through an overlay mount), layer sharing, removal, bad
// references, an unreachable registry and a blob corrupted in the registry's storage.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_join.h"
#include "images/digest.h"
#include "images/image_store.h"
#include "tests/integration/images/local_registry.h"
#include "tests/support/status_matchers.h"
#include "tests/unit/images/tar_builder.h"

namespace skiff::images {
namespace {

using ::skiff::images::testing::LocalRegistry;
using ::skiff::images::testing::PushedImage;
using ::skiff::images::testing::PushImage;
using ::skiff::images::testing::PushManifest;
using ::skiff::images::testing::TarBuilder;
using ::skiff::images::testing::TarCompression;
using ::skiff::images::testing::TempDir;
using ::skiff::images::testing::TestLayer;
using ::skiff::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

TestLayer Layer(TarCompression c, const std::function<void(TarBuilder&)>& fill) {
  TarBuilder plain(TarCompression::kNone);
  fill(plain);
  TarBuilder packed(c);
  fill(packed);
  const char* mt = c == TarCompression::kGzip   ? "application/vnd.oci.image.layer.v1.tar+gzip"
                   : c == TarCompression::kZstd ? "application/vnd.oci.image.layer.v1.tar+zstd"
                                                : "application/vnd.oci.image.layer.v1.tar";
  return TestLayer{plain.Finish(), packed.Finish(), mt};
}

std::string Read(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

bool Exists(const std::string& path) { return fs::exists(fs::symlink_status(path)); }

std::set<std::string> Names(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

class RegistryPullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIFF_ASSERT_OK_AND_ASSIGN(registry_, LocalRegistry::Start());
    SKIFF_ASSERT_OK_AND_ASSIGN(store_, OpenStore());
  }

  absl::StatusOr<std::unique_ptr<ImageStore>> OpenStore() {
    StoreOptions o;
    o.root = root_.path() + "/store";
    o.insecure_registries = {registry_->host_port()};
    o.max_attempts = 3;
    o.initial_backoff_ms = 10;
    return ImageStore::Open(o);
  }

  std::string Ref(const std::string& name) { return registry_->host_port() + "/" + name; }

  // Three layers: gzip base, zstd layer with whiteouts and an opaque dir, plain tar app.
  std::vector<TestLayer> MultiLayer() {
    return {
        Layer(TarCompression::kGzip,
              [](TarBuilder& t) {
                t.Dir("bin")
                    .File("bin/busybox", "BUSYBOX", 0755)
                    .Symlink("bin/sh", "busybox")
                    .Dir("etc")
                    .File("etc/keep", "keep v1")
                    .File("etc/remove", "to be whited out")
                    .Dir("var/cache")
                    .File("var/cache/a", "a")
                    .File("var/cache/b", "b")
                    .File("usr/share/doc/x", "doc");
              }),
        Layer(TarCompression::kZstd,
              [](TarBuilder& t) {
                t.File("etc/.wh.remove", "")
                    .File("etc/keep", "keep v2")
                    .File("var/cache/.wh..wh..opq", "")
                    .File("var/cache/c", "c")
                    .File("usr/bin/passwd", "setuid", 04755);
              }),
        Layer(TarCompression::kNone,
              [](TarBuilder& t) {
                t.Dir("app", 0755, 1000, 1000).File("app/run.sh", "#!/bin/sh\n", 0755, 1000, 1000);
              }),
    };
  }

  TempDir root_;
  std::unique_ptr<LocalRegistry> registry_;
  std::unique_ptr<ImageStore> store_;
};

TEST_F(RegistryPullTest, PullsMultiLayerImageWithWhiteoutsAndMountsIt) {
  const std::string config =
      R"({"Entrypoint":["/app/run.sh"],"Cmd":["serve"],"Env":["PATH=/bin","PORT=1"],)"
      R"("WorkingDir":"/app","User":"1000:1000"})";
  SKIFF_ASSERT_OK_AND_ASSIGN(PushedImage pushed,
                             PushImage(registry_->base_url(), "multi", "v1", MultiLayer(), config));
  std::vector<PullProgress> seen;
  auto start = std::chrono::steady_clock::now();
  SKIFF_ASSERT_OK_AND_ASSIGN(
      Image img, store_->Pull(Ref("multi:v1"), [&](const PullProgress& p) { seen.push_back(p); }));
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start)
                .count();
  std::cout << "pull of 3-layer image took " << ms << " ms\n";
  EXPECT_EQ(img.manifest_digest, pushed.manifest_digest);
  EXPECT_THAT(img.references, ElementsAre(Ref("multi:v1")));
  EXPECT_THAT(img.config.entrypoint, ElementsAre("/app/run.sh"));
  EXPECT_THAT(img.config.cmd, ElementsAre("serve"));
  EXPECT_THAT(img.config.env, ElementsAre("PATH=/bin", "PORT=1"));
  EXPECT_EQ(img.config.working_dir, "/app");
  EXPECT_EQ(img.config.user, "1000:1000");
  ASSERT_EQ(img.layer_dirs.size(), 3u);
  const std::string layers = root_.path() + "/store/layers/";
  EXPECT_EQ(img.layer_dirs[0], layers + DigestHex(pushed.layer_digests[2]));  // topmost first
  EXPECT_EQ(img.layer_dirs[2], layers + DigestHex(pushed.layer_digests[0]));

  // Progress: phases in order, ending complete.
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.front().phase, "resolving");
  EXPECT_EQ(seen.back().phase, "done");
  EXPECT_EQ(seen.back().layers_total, 3u);
  EXPECT_EQ(seen.back().layers_done, 3u);
  EXPECT_EQ(seen.back().done_bytes, seen.back().total_bytes);
  EXPECT_EQ(seen.back().total_bytes, img.size_bytes);
  EXPECT_TRUE(std::any_of(seen.begin(), seen.end(),
                          [](const PullProgress& p) { return p.phase == "unpacking"; }));

  // Layer dirs, file by file.
  const std::string base = img.layer_dirs[2], mid = img.layer_dirs[1], top = img.layer_dirs[0];
  EXPECT_EQ(Names(base), (std::set<std::string>{"bin", "etc", "var", "usr"}));
  EXPECT_EQ(Read(base + "/bin/busybox"), "BUSYBOX");
  EXPECT_EQ(fs::read_symlink(base + "/bin/sh"), "busybox");
  EXPECT_EQ(Read(base + "/etc/remove"), "to be whited out");
  EXPECT_EQ(Names(base + "/var/cache"), (std::set<std::string>{"a", "b"}));
  EXPECT_EQ(Names(mid + "/etc"), (std::set<std::string>{"keep", "remove"}));
  struct stat wh;
  ASSERT_EQ(lstat((mid + "/etc/remove").c_str(), &wh), 0);
  EXPECT_TRUE(S_ISCHR(wh.st_mode));
  EXPECT_EQ(wh.st_rdev, makedev(0, 0));
  char v[4];
  EXPECT_EQ(lgetxattr((mid + "/var/cache").c_str(), "trusted.overlay.opaque", v, sizeof(v)), 1);
  EXPECT_EQ(Names(mid + "/var/cache"), (std::set<std::string>{"c"}));
  struct stat passwd;
  ASSERT_EQ(lstat((mid + "/usr/bin/passwd").c_str(), &passwd), 0);
  EXPECT_EQ(passwd.st_mode & 07777, 04755u);
  struct stat run;
  ASSERT_EQ(lstat((top + "/app/run.sh").c_str(), &run), 0);
  EXPECT_EQ(run.st_uid, 1000u);
  EXPECT_EQ(run.st_mode & 0777, 0755u);

  // The merged view through overlayfs.
  TempDir mnt;
  std::string opts = "lowerdir=" + absl::StrJoin(img.layer_dirs, ":");
  ASSERT_EQ(mount("overlay", mnt.path().c_str(), "overlay", MS_RDONLY, opts.c_str()), 0)
      << strerror(errno);
  absl::Cleanup unmount = [&] { umount2(mnt.path().c_str(), MNT_DETACH); };
  const std::string m = mnt.path();
  EXPECT_FALSE(Exists(m + "/etc/remove"));
  EXPECT_EQ(Read(m + "/etc/keep"), "keep v2");
  EXPECT_EQ(Names(m + "/etc"), (std::set<std::string>{"keep"}));
  EXPECT_EQ(Names(m + "/var/cache"), (std::set<std::string>{"c"}));
  EXPECT_EQ(Read(m + "/bin/busybox"), "BUSYBOX");
  EXPECT_EQ(Read(m + "/usr/share/doc/x"), "doc");
  EXPECT_EQ(Read(m + "/app/run.sh"), "#!/bin/sh\n");
  EXPECT_EQ(Names(m), (std::set<std::string>{"app", "bin", "etc", "usr", "var"}));
  std::move(unmount).Invoke();

  // Get/List by reference and digest; survives a reopen (refs.json).
  SKIFF_ASSERT_OK_AND_ASSIGN(Image got, store_->Get(Ref("multi:v1")));
  EXPECT_EQ(got.layer_dirs, img.layer_dirs);
  EXPECT_EQ(got.references, img.references);
  SKIFF_ASSERT_OK(store_->Get(img.manifest_digest));
  EXPECT_EQ(store_->List().size(), 1u);
  // Pulling the tag again resolves it (HEAD) and reuses everything.
  SKIFF_ASSERT_OK_AND_ASSIGN(Image again, store_->Pull(Ref("multi:v1"), nullptr));
  EXPECT_EQ(again.manifest_digest, img.manifest_digest);
  EXPECT_EQ(again.layer_dirs, img.layer_dirs);
  // A moved tag is followed: v1 now points at a one-layer image.
  SKIFF_ASSERT_OK_AND_ASSIGN(
      PushedImage moved,
      PushImage(registry_->base_url(), "multi", "v1",
                {Layer(TarCompression::kNone, [](TarBuilder& t) { t.File("moved", "yes"); })}));
  SKIFF_ASSERT_OK_AND_ASSIGN(Image now, store_->Pull(Ref("multi:v1"), nullptr));
  EXPECT_EQ(now.manifest_digest, moved.manifest_digest);
  EXPECT_EQ(Read(now.layer_dirs[0] + "/moved"), "yes");
  // The old image stays (by digest), without references.
  SKIFF_ASSERT_OK_AND_ASSIGN(Image old, store_->Get(img.manifest_digest));
  EXPECT_TRUE(old.references.empty());
  SKIFF_ASSERT_OK(store_->Remove(now.manifest_digest));
  ASSERT_TRUE(store_->Get(Ref("multi:v1")).status().code() == absl::StatusCode::kNotFound);
  SKIFF_ASSERT_OK_AND_ASSIGN(img, store_->Pull(Ref("multi@" + img.manifest_digest), nullptr));
  store_.reset();
  SKIFF_ASSERT_OK_AND_ASSIGN(store_, OpenStore());
  SKIFF_ASSERT_OK_AND_ASSIGN(got, store_->Get(img.manifest_digest));
  EXPECT_EQ(got.config.entrypoint, img.config.entrypoint);
  EXPECT_EQ(got.layer_dirs, img.layer_dirs);
  // A digest reference of a pulled image needs no registry.
  const std::string by_digest = Ref("multi@" + img.manifest_digest);
  registry_.reset();
  SKIFF_ASSERT_OK_AND_ASSIGN(got, store_->Pull(by_digest, nullptr));
  EXPECT_EQ(got.manifest_digest, img.manifest_digest);
}

TEST_F(RegistryPullTest, ImageIndexSelectsLinuxAmd64) {
  SKIFF_ASSERT_OK_AND_ASSIGN(
      PushedImage amd64,
      PushImage(registry_->base_url(), "multiarch", "amd64",
                {Layer(TarCompression::kGzip, [](TarBuilder& t) { t.File("arch", "amd64"); })}));
  SKIFF_ASSERT_OK_AND_ASSIGN(
      PushedImage arm64,
      PushImage(registry_->base_url(), "multiarch", "arm64",
                {Layer(TarCompression::kGzip, [](TarBuilder& t) { t.File("arch", "arm64"); })}));
  auto entry = [](const PushedImage& p, const char* arch) {
    return std::string(R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")") +
           p.manifest_digest + R"(","size":)" + std::to_string(p.manifest.size()) +
           R"(,"platform":{"os":"linux","architecture":")" + arch + R"("}})";
  };
  std::string index = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",)"
                      R"("manifests":[)" +
                      entry(arm64, "arm64") + "," + entry(amd64, "amd64") + "]}";
  SKIFF_ASSERT_OK(PushManifest(registry_->base_url(), "multiarch", "latest",
                               "application/vnd.oci.image.index.v1+json", index));
  SKIFF_ASSERT_OK_AND_ASSIGN(Image img, store_->Pull(Ref("multiarch"), nullptr));
  EXPECT_EQ(img.manifest_digest, amd64.manifest_digest);
  ASSERT_EQ(img.layer_dirs.size(), 1u);
  EXPECT_EQ(Read(img.layer_dirs[0] + "/arch"), "amd64");
  EXPECT_THAT(img.references, ElementsAre(Ref("multiarch:latest")));
}

TEST_F(RegistryPullTest, DockerManifestListAndDockerV2Manifest) {
  auto docker_layer = [](const char* arch) {
    TarBuilder plain;
    plain.File("arch", arch);
    std::string tar = plain.Finish();
    TarBuilder gz(TarCompression::kGzip);
    gz.File("arch", arch);
    return TestLayer{tar, gz.Finish(), "application/vnd.docker.image.rootfs.diff.tar.gzip"};
  };
  SKIFF_ASSERT_OK_AND_ASSIGN(PushedImage amd64,
                             PushImage(registry_->base_url(), "dockerlist", "amd64",
                                       {docker_layer("amd64")}, R"({"Cmd":["/bin/sh"]})", {},
                                       /*docker_media_types=*/true));
  SKIFF_ASSERT_OK_AND_ASSIGN(PushedImage arm, PushImage(registry_->base_url(), "dockerlist", "arm",
                                                        {docker_layer("arm")}, "{}", {}, true));
  auto entry = [](const PushedImage& p, const char* arch) {
    return std::string(
               R"({"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":")") +
           p.manifest_digest + R"(","size":)" + std::to_string(p.manifest.size()) +
           R"(,"platform":{"os":"linux","architecture":")" + arch + R"("}})";
  };
  std::string list =
      R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json",)"
      R"("manifests":[)" +
      entry(arm, "arm") + "," + entry(amd64, "amd64") + "]}";
  SKIFF_ASSERT_OK(PushManifest(registry_->base_url(), "dockerlist", "latest",
                               "application/vnd.docker.distribution.manifest.list.v2+json", list));
  SKIFF_ASSERT_OK_AND_ASSIGN(Image img, store_->Pull(Ref("dockerlist"), nullptr));
  EXPECT_EQ(img.manifest_digest, amd64.manifest_digest);
  EXPECT_THAT(img.config.cmd, ElementsAre("/bin/sh"));
  ASSERT_EQ(img.layer_dirs.size(), 1u);
  EXPECT_EQ(Read(img.layer_dirs[0] + "/arch"), "amd64");
  // The Docker v2 manifest directly, by tag.
  SKIFF_ASSERT_OK_AND_ASSIGN(Image direct, store_->Pull(Ref("dockerlist:arm"), nullptr));
  EXPECT_EQ(Read(direct.layer_dirs[0] + "/arch"), "arm");
  // An index without linux/amd64 is NotFound naming what it has.
  std::string arm_only =
      R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json",)"
      R"("manifests":[)" +
      entry(arm, "arm") + "]}";
  SKIFF_ASSERT_OK(PushManifest(registry_->base_url(), "dockerlist", "armonly",
                               "application/vnd.docker.distribution.manifest.list.v2+json",
                               arm_only));
  EXPECT_THAT(store_->Pull(Ref("dockerlist:armonly"), nullptr),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("linux/arm")));
}

TEST_F(RegistryPullTest, SharedLayerIsUnpackedOnceAndRemovalKeepsWhatOthersUse) {
  TestLayer shared = Layer(TarCompression::kGzip, [](TarBuilder& t) { t.File("shared", "base"); });
  SKIFF_ASSERT_OK_AND_ASSIGN(
      PushedImage a, PushImage(registry_->base_url(), "app-a", "v1",
                               {shared, Layer(TarCompression::kGzip,
                                              [](TarBuilder& t) { t.File("a", "only a"); })}));
  SKIFF_ASSERT_OK_AND_ASSIGN(
      PushedImage b, PushImage(registry_->base_url(), "app-b", "v1",
                               {shared, Layer(TarCompression::kGzip,
                                              [](TarBuilder& t) { t.File("b", "only b"); })}));
  SKIFF_ASSERT_OK_AND_ASSIGN(Image ia, store_->Pull(Ref("app-a:v1"), nullptr));
  // Stamp the shared layer: pulling B must reuse it, not unpack it again.
  const std::string shared_dir = ia.layer_dirs[1];
  std::ofstream(shared_dir + "/stamp") << "unpacked once";
  struct stat before;
  ASSERT_EQ(stat(shared_dir.c_str(), &before), 0);
  SKIFF_ASSERT_OK_AND_ASSIGN(Image ib, store_->Pull(Ref("app-b:v1"), nullptr));
  EXPECT_EQ(ib.layer_dirs[1], shared_dir);
  EXPECT_EQ(Read(shared_dir + "/stamp"), "unpacked once");
  struct stat after;
  ASSERT_EQ(stat(shared_dir.c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino);
  EXPECT_EQ(Names(root_.path() + "/store/layers").size(), 3u);

  // In use → FailedPrecondition; afterwards removal keeps B's layers.
  store_->AddUser(ia.manifest_digest);
  EXPECT_THAT(store_->Remove(Ref("app-a:v1")),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("in use")));
  store_->RemoveUser(ia.manifest_digest);
  SKIFF_ASSERT_OK(store_->Remove(Ref("app-a:v1")));
  EXPECT_THAT(store_->Get(Ref("app-a:v1")), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_TRUE(Exists(shared_dir));
  EXPECT_FALSE(Exists(ia.layer_dirs[0]));
  EXPECT_TRUE(Exists(ib.layer_dirs[0]));
  const std::string blobs = root_.path() + "/store/blobs/sha256/";
  EXPECT_FALSE(Exists(blobs + DigestHex(a.manifest_digest)));
  EXPECT_FALSE(Exists(blobs + DigestHex(a.layer_digests[1])));
  EXPECT_TRUE(Exists(blobs + DigestHex(a.layer_digests[0])));
  // Removing the last image by digest leaves an empty store.
  SKIFF_ASSERT_OK(store_->Remove(ib.manifest_digest));
  EXPECT_TRUE(Names(root_.path() + "/store/layers").empty());
  EXPECT_TRUE(Names(root_.path() + "/store/blobs/sha256").empty());
  EXPECT_TRUE(store_->List().empty());
  (void)b;
}

TEST_F(RegistryPullTest, ConcurrentPullsOfOneImageShareTheWork) {
  SKIFF_ASSERT_OK(PushImage(registry_->base_url(), "multi", "v1", MultiLayer()));
  std::vector<absl::StatusOr<Image>> results(4, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = store_->Pull(Ref("multi:v1"), nullptr); });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : results) {
    SKIFF_ASSERT_OK(r);
    EXPECT_EQ(r->layer_dirs, results[0]->layer_dirs);
  }
  EXPECT_EQ(Names(root_.path() + "/store/layers").size(), 3u);  // no temp dirs left
  EXPECT_EQ(Read(results[0]->layer_dirs[1] + "/etc/keep"), "keep v2");
  EXPECT_EQ(store_->List().size(), 1u);
}

TEST_F(RegistryPullTest, UnknownTagOrRepositoryIsNotFoundNamingTheReference) {
  SKIFF_ASSERT_OK(
      PushImage(registry_->base_url(), "exists", "v1",
                {Layer(TarCompression::kNone, [](TarBuilder& t) { t.File("f", "x"); })}));
  EXPECT_THAT(store_->Pull(Ref("exists:nope"), nullptr),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(Ref("exists:nope"))));
  EXPECT_THAT(store_->Pull(Ref("no/such/repo:v1"), nullptr),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(Ref("no/such/repo:v1"))));
  EXPECT_THAT(store_->Pull(Ref("exists:nope"), nullptr),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("MANIFEST_UNKNOWN")));
  const std::string unknown_digest = Ref("exists@" + Sha256Digest("no such manifest"));
  EXPECT_THAT(store_->Pull(unknown_digest, nullptr),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(unknown_digest)));
  EXPECT_THAT(store_->Pull("Bad Reference", nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("Bad Reference")));
  EXPECT_THAT(store_->Get(Ref("exists:v1")), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_TRUE(store_->List().empty());
}

TEST_F(RegistryPullTest, UnreachableRegistryIsUnavailableQuickly) {
  int port = testing::FreePort();  // nothing listens there
  StoreOptions o;
  o.root = root_.path() + "/store2";
  std::string host = "127.0.0.1:" + std::to_string(port);
  o.insecure_registries = {host};
  o.max_attempts = 3;
  o.initial_backoff_ms = 10;
  SKIFF_ASSERT_OK_AND_ASSIGN(auto store, ImageStore::Open(o));
  auto start = std::chrono::steady_clock::now();
  EXPECT_THAT(store->Pull(host + "/x:v1", nullptr),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr(host + "/x:v1")));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST_F(RegistryPullTest, BlobCorruptedInRegistryIsDataLoss) {
  TestLayer layer =
      Layer(TarCompression::kGzip, [](TarBuilder& t) { t.File("data", std::string(50000, 'd')); });
  SKIFF_ASSERT_OK_AND_ASSIGN(PushedImage p,
                             PushImage(registry_->base_url(), "corrupt", "v1", {layer}));
  std::string data_path = registry_->BlobDataPath(p.layer_digests[0]);
  ASSERT_TRUE(Exists(data_path)) << data_path;
  std::string bad = layer.blob;
  bad[bad.size() / 2] ^= 0x55;
  std::ofstream(data_path, std::ios::binary | std::ios::trunc) << bad;
  EXPECT_THAT(store_->Pull(Ref("corrupt:v1"), nullptr),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr(p.layer_digests[0])));
  EXPECT_FALSE(Exists(root_.path() + "/store/blobs/sha256/" + DigestHex(p.layer_digests[0])));
  EXPECT_FALSE(Exists(root_.path() + "/store/layers/" + DigestHex(p.layer_digests[0])));
  // A failed pull leaves nothing behind: no layer dir, no manifest/config blob.
  EXPECT_TRUE(Names(root_.path() + "/store/layers").empty());
  EXPECT_TRUE(Names(root_.path() + "/store/blobs/sha256").empty());
  EXPECT_THAT(store_->Get(Ref("corrupt:v1")), StatusIs(absl::StatusCode::kNotFound));
  // Repaired in the registry → the next pull succeeds.
  std::ofstream(data_path, std::ios::binary | std::ios::trunc) << layer.blob;
  SKIFF_ASSERT_OK_AND_ASSIGN(Image img, store_->Pull(Ref("corrupt:v1"), nullptr));
  EXPECT_EQ(Read(img.layer_dirs[0] + "/data"), std::string(50000, 'd'));
}

}  // namespace
}  // namespace skiff::images
