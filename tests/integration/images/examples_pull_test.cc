// Pulls every example image of scripts/images/build.sh (docs/images-examples.md) from a
// real local docker-registry through skiff's own ImageStore: configs as documented, layer
// counts, base layers unpacked once and shared (same directory, same inode), multilayer's
// layers checked file by file in overlayfs form and its merged tree (through a read-only
// overlay mount) compared with the documented final tree, multiarch's linux/amd64
// selection and hello:docker's (Docker v2 schema 2) layer sharing. `big` (~316 MB) is in
// its own test case, run by the `slow` ctest entry.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_join.h"
#include "images/image_store.h"
#include "tests/support/registry.h"
#include "tests/support/status_matchers.h"

namespace skiff::images {
namespace {

using ::skiff::testing::LocalRegistry;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
namespace fs = std::filesystem;

constexpr char kOciManifest[] = "application/vnd.oci.image.manifest.v1+json";
constexpr char kOciIndex[] = "application/vnd.oci.image.index.v1+json";
constexpr char kDockerManifest[] = "application/vnd.docker.distribution.manifest.v2+json";

// A temp dir removed (recursively) on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "skiff-examples-XXXXXX").string();
    if (mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~TempDir() {
    if (path_.empty()) return;
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string Read(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

std::set<std::string> Names(const std::string& dir) {
  std::set<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) out.insert(e.path().filename().string());
  return out;
}

struct stat Lstat(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) {
    ADD_FAILURE() << "lstat(" << path << "): " << strerror(errno);
    st = {};
  }
  return st;
}

std::string LinkTarget(const std::string& path) {
  std::error_code ec;
  fs::path t = fs::read_symlink(path, ec);
  if (ec) return "<readlink(" + path + "): " + ec.message() + ">";
  return t.string();
}

// A regular file with exactly `content`, mode 0644, owner 0:0, mtime 0.
void ExpectFile(const std::string& path, const std::string& content) {
  SCOPED_TRACE(path);
  struct stat st = Lstat(path);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_gid, 0u);
  EXPECT_EQ(st.st_mtim.tv_sec, 0);
  EXPECT_EQ(Read(path), content);
}

void ExpectSymlink(const std::string& path, const std::string& target) {
  SCOPED_TRACE(path);
  struct stat st = Lstat(path);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(LinkTarget(path), target);
}

void ExpectDir(const std::string& path) {
  SCOPED_TRACE(path);
  struct stat st = Lstat(path);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_gid, 0u);
}

// An overlayfs whiteout: a character device 0:0.
void ExpectWhiteout(const std::string& path) {
  SCOPED_TRACE(path);
  struct stat st = Lstat(path);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(0, 0));
}

void ExpectOpaque(const std::string& dir) {
  char v[8] = {};
  ssize_t n = lgetxattr(dir.c_str(), "trusted.overlay.opaque", v, sizeof(v));
  EXPECT_EQ(n, 1) << dir << ": " << strerror(errno);
  EXPECT_EQ(std::string(v, n > 0 ? n : 0), "y") << dir;
}

void ExpectNotOpaque(const std::string& dir) {
  char v[8] = {};
  EXPECT_LT(lgetxattr(dir.c_str(), "trusted.overlay.opaque", v, sizeof(v)), 0) << dir;
}

void ExpectSameInode(const std::string& a, const std::string& b) {
  struct stat sa = Lstat(a), sb = Lstat(b);
  EXPECT_EQ(sa.st_dev, sb.st_dev) << a << " vs " << b;
  EXPECT_EQ(sa.st_ino, sb.st_ino) << a << " vs " << b;
  EXPECT_EQ(sa.st_nlink, 2u) << a;
}

// No name starting with ".wh." anywhere below `dir` (whiteouts are in overlayfs form).
void ExpectNoAufsWhiteouts(const std::string& dir) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); it != fs::end(it); it.increment(ec)) {
    if (ec) break;
    EXPECT_NE(it->path().filename().string().rfind(".wh.", 0), 0u) << it->path();
  }
  EXPECT_FALSE(ec) << dir << ": " << ec.message();
}

struct Expected {
  std::string name;  // example image name
  std::string tag;   // "latest" or "docker"
  size_t layers;     // layer count
  std::vector<std::string> entrypoint;
};

const std::vector<std::string> kHttpdWww = {"/bin/sh", "-c",
                                            "exec httpd -f -v -p ${PORT:-8080} -h /www"};
const std::vector<std::string> kHttpdData = {"/bin/sh", "-c",
                                             "exec httpd -f -v -p ${PORT:-8080} -h /data"};
const std::vector<std::string> kRunSh = {"/app/run.sh"};

std::vector<Expected> AllExamples() {
  return {
      {"hello", "latest", 2, kHttpdWww},        {"sigterm-handler", "latest", 3, kRunSh},
      {"sigterm-ignorer", "latest", 3, kRunSh}, {"forker", "latest", 3, kRunSh},
      {"memhog", "latest", 3, kRunSh},          {"multilayer", "latest", 5, kHttpdData},
      {"job", "latest", 2, {"/app/job.sh"}},    {"multiarch", "latest", 2, kHttpdWww},
      {"hello", "docker", 2, kHttpdWww},
  };
}

class ExamplesPullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(tmp_.path().empty()) << "mkdtemp: " << strerror(errno);
    SKIFF_ASSERT_OK_AND_ASSIGN(registry_, LocalRegistry::Start());
    StoreOptions o;
    o.root = tmp_.path() + "/store";
    o.insecure_registries = {registry_->address()};
    o.max_attempts = 3;
    o.initial_backoff_ms = 10;
    SKIFF_ASSERT_OK_AND_ASSIGN(store_, ImageStore::Open(o));
  }

  std::string root() const { return tmp_.path() + "/store"; }

  // The manifest (or index) the registry serves for `name:ref`, parsed; also its media type.
  nlohmann::json Manifest(const std::string& name, const std::string& ref,
                          std::string* media_type = nullptr) {
    auto r = registry_->Get(
        "/v2/skiff/" + name + "/manifests/" + ref,
        {std::string("Accept: ") + kOciManifest + ", " + kOciIndex + ", " + kDockerManifest});
    if (!r.ok()) {
      ADD_FAILURE() << r.status();
      return nlohmann::json();
    }
    EXPECT_EQ(r->status, 200) << name << ":" << ref << ": " << r->body;
    if (media_type != nullptr) *media_type = r->headers["content-type"];
    return nlohmann::json::parse(r->body, nullptr, /*allow_exceptions=*/false);
  }

  // Layer blob digests of the manifest `digest` of `name`, bottom first.
  std::vector<std::string> LayerDigests(const std::string& name, const std::string& digest) {
    nlohmann::json m = Manifest(name, digest);
    std::vector<std::string> out;
    if (!m.is_object() || !m.contains("layers") || !m["layers"].is_array()) {
      ADD_FAILURE() << name << "@" << digest << ": not an image manifest: " << m.dump();
      return out;
    }
    for (const auto& l : m["layers"]) out.push_back(l.value("digest", ""));
    return out;
  }

  TempDir tmp_;
  std::unique_ptr<LocalRegistry> registry_;
  std::unique_ptr<ImageStore> store_;
};

void CheckMultilayerLayers(const std::vector<std::string>& dirs) {
  ASSERT_EQ(dirs.size(), 5u);
  const std::string& l3 = dirs[2];
  const std::string& l4 = dirs[1];
  const std::string& l5 = dirs[0];
  {
    SCOPED_TRACE("layer 3: " + l3);
    EXPECT_EQ(Names(l3), (std::set<std::string>{"data", "hard", "opaque"}));
    EXPECT_EQ(Names(l3 + "/data"), (std::set<std::string>{"deleted.txt", "gone-dir", "keep.txt",
                                                          "replaced.txt", "resurrected.txt"}));
    ExpectFile(l3 + "/data/keep.txt", "keep v1\n");
    ExpectFile(l3 + "/data/deleted.txt", "deleted v1\n");
    ExpectFile(l3 + "/data/replaced.txt", "replaced v1\n");
    ExpectFile(l3 + "/data/resurrected.txt", "resurrected v1\n");
    EXPECT_EQ(Names(l3 + "/data/gone-dir"), (std::set<std::string>{"a.txt", "nested"}));
    ExpectFile(l3 + "/data/gone-dir/a.txt", "gone a\n");
    EXPECT_EQ(Names(l3 + "/data/gone-dir/nested"), (std::set<std::string>{"b.txt"}));
    ExpectFile(l3 + "/data/gone-dir/nested/b.txt", "gone b\n");
    EXPECT_EQ(Names(l3 + "/opaque"), (std::set<std::string>{"old-a.txt", "sub"}));
    ExpectFile(l3 + "/opaque/old-a.txt", "opaque old a\n");
    EXPECT_EQ(Names(l3 + "/opaque/sub"), (std::set<std::string>{"old-b.txt"}));
    ExpectFile(l3 + "/opaque/sub/old-b.txt", "opaque old b\n");
    ExpectNotOpaque(l3 + "/opaque");
    EXPECT_EQ(Names(l3 + "/hard"), (std::set<std::string>{"link.txt", "original.txt"}));
    ExpectFile(l3 + "/hard/link.txt", "hardlinked v1\n");
    ExpectFile(l3 + "/hard/original.txt", "hardlinked v1\n");
    ExpectSameInode(l3 + "/hard/link.txt", l3 + "/hard/original.txt");
  }
  {
    SCOPED_TRACE("layer 4: " + l4);
    EXPECT_EQ(Names(l4), (std::set<std::string>{"data", "links", "opaque"}));
    // The .wh.<name> entries became whiteouts named <name>; .wh..wh..opq became the xattr.
    EXPECT_EQ(Names(l4 + "/data"), (std::set<std::string>{"deleted.txt", "gone-dir", "replaced.txt",
                                                          "resurrected.txt"}));
    ExpectWhiteout(l4 + "/data/deleted.txt");
    ExpectWhiteout(l4 + "/data/resurrected.txt");
    ExpectWhiteout(l4 + "/data/gone-dir");
    ExpectFile(l4 + "/data/replaced.txt", "replaced v2\n");
    EXPECT_EQ(Names(l4 + "/opaque"), (std::set<std::string>{"new.txt"}));
    ExpectOpaque(l4 + "/opaque");
    ExpectNotOpaque(l4 + "/data");
    ExpectFile(l4 + "/opaque/new.txt", "opaque new\n");
    EXPECT_EQ(Names(l4 + "/links"), (std::set<std::string>{"absolute", "dangling", "relative"}));
    ExpectSymlink(l4 + "/links/relative", "../data/keep.txt");
    ExpectSymlink(l4 + "/links/absolute", "/data/keep.txt");
    ExpectSymlink(l4 + "/links/dangling", "/data/deleted.txt");
  }
  {
    SCOPED_TRACE("layer 5: " + l5);
    EXPECT_EQ(Names(l5), (std::set<std::string>{"data", "hard"}));
    EXPECT_EQ(Names(l5 + "/data"),
              (std::set<std::string>{"late.txt", "replaced.txt", "resurrected.txt"}));
    ExpectFile(l5 + "/data/replaced.txt", "replaced v3\n");
    ExpectFile(l5 + "/data/resurrected.txt", "resurrected v5\n");
    ExpectFile(l5 + "/data/late.txt", "late\n");
    EXPECT_EQ(Names(l5 + "/hard"), (std::set<std::string>{"second-link.txt", "second.txt"}));
    ExpectFile(l5 + "/hard/second-link.txt", "hardlinked v5\n");
    ExpectFile(l5 + "/hard/second.txt", "hardlinked v5\n");
    ExpectSameInode(l5 + "/hard/second-link.txt", l5 + "/hard/second.txt");
  }
  for (const auto& d : dirs) ExpectNoAufsWhiteouts(d);
}

// The documented final tree of multilayer, through an overlay of its layer dirs.
void CheckMultilayerMerged(const std::vector<std::string>& dirs, const std::string& mnt) {
  const std::string opts = "lowerdir=" + absl::StrJoin(dirs, ":");
  ASSERT_EQ(mount("overlay", mnt.c_str(), "overlay", MS_RDONLY, opts.c_str()), 0)
      << "mount(overlay, " << mnt << ", " << opts << "): " << strerror(errno);
  absl::Cleanup unmount = [&] {
    EXPECT_EQ(umount2(mnt.c_str(), MNT_DETACH), 0) << "umount(" << mnt << "): " << strerror(errno);
  };
  const std::string m = mnt;
  EXPECT_EQ(Names(m), (std::set<std::string>{"bin", "data", "dev", "etc", "hard", "links", "opaque",
                                             "proc", "root", "run", "sys", "tmp", "var", "www"}));
  EXPECT_EQ(Names(m + "/data"),
            (std::set<std::string>{"keep.txt", "late.txt", "replaced.txt", "resurrected.txt"}));
  ExpectDir(m + "/data");
  ExpectFile(m + "/data/keep.txt", "keep v1\n");
  ExpectFile(m + "/data/late.txt", "late\n");
  ExpectFile(m + "/data/replaced.txt", "replaced v3\n");
  ExpectFile(m + "/data/resurrected.txt", "resurrected v5\n");

  EXPECT_EQ(Names(m + "/opaque"), (std::set<std::string>{"new.txt"}));
  ExpectDir(m + "/opaque");
  ExpectFile(m + "/opaque/new.txt", "opaque new\n");

  EXPECT_EQ(Names(m + "/hard"),
            (std::set<std::string>{"link.txt", "original.txt", "second-link.txt", "second.txt"}));
  ExpectDir(m + "/hard");
  ExpectFile(m + "/hard/link.txt", "hardlinked v1\n");
  ExpectFile(m + "/hard/original.txt", "hardlinked v1\n");
  ExpectFile(m + "/hard/second-link.txt", "hardlinked v5\n");
  ExpectFile(m + "/hard/second.txt", "hardlinked v5\n");
  ExpectSameInode(m + "/hard/original.txt", m + "/hard/link.txt");
  ExpectSameInode(m + "/hard/second.txt", m + "/hard/second-link.txt");
  EXPECT_NE(Lstat(m + "/hard/original.txt").st_ino, Lstat(m + "/hard/second.txt").st_ino);

  EXPECT_EQ(Names(m + "/links"), (std::set<std::string>{"absolute", "dangling", "relative"}));
  ExpectDir(m + "/links");
  ExpectSymlink(m + "/links/relative", "../data/keep.txt");
  ExpectSymlink(m + "/links/absolute", "/data/keep.txt");
  ExpectSymlink(m + "/links/dangling", "/data/deleted.txt");
  // relative resolves inside the tree; dangling's target is gone.
  EXPECT_EQ(Read(m + "/links/relative"), "keep v1\n");
  struct stat st {};
  EXPECT_NE(lstat((m + "/data/deleted.txt").c_str(), &st), 0);

  EXPECT_EQ(Names(m + "/www"), (std::set<std::string>{"index.html"}));
  ExpectFile(m + "/www/index.html", "hello from skiff\n");
  struct stat bb = Lstat(m + "/bin/busybox");
  EXPECT_TRUE(S_ISREG(bb.st_mode));
  EXPECT_EQ(bb.st_mode & 0777, 0755u);
  EXPECT_EQ(bb.st_size, static_cast<off_t>(fs::file_size("/bin/busybox")));
  ExpectSymlink(m + "/bin/sh", "busybox");

  // Absent: every deleted/hidden path and every .wh.* entry.
  for (const char* gone : {"/data/deleted.txt", "/data/gone-dir", "/data/gone-dir/a.txt",
                           "/opaque/old-a.txt", "/opaque/sub", "/opaque/sub/old-b.txt"}) {
    EXPECT_NE(lstat((m + gone).c_str(), &st), 0) << gone << " is present";
  }
  for (const char* d : {"/data", "/opaque", "/hard", "/links", "/www"}) {
    ExpectNoAufsWhiteouts(m + d);
  }
}

TEST_F(ExamplesPullTest, EveryExampleImagePullsWithSharedLayersAndWhiteouts) {
  SKIFF_ASSERT_OK(
      registry_->PushExampleImages({"hello", "sigterm-handler", "sigterm-ignorer", "forker",
                                    "memhog", "multilayer", "job", "multiarch"}));
  std::map<std::string, Image> pulled;  // "name:tag" -> image
  std::set<std::string> distinct_layer_digests;
  for (const Expected& e : AllExamples()) {
    const std::string key = e.name + ":" + e.tag;
    SCOPED_TRACE(key);
    int done_events = 0;
    SKIFF_ASSERT_OK_AND_ASSIGN(
        Image img, store_->Pull(registry_->Reference(e.name, e.tag), [&](const PullProgress& p) {
          if (p.phase == "done") ++done_events;
        }));
    EXPECT_EQ(done_events, 1);
    EXPECT_EQ(img.config.entrypoint, e.entrypoint);
    EXPECT_THAT(img.config.cmd, IsEmpty());
    EXPECT_THAT(img.config.env, ElementsAre("PATH=/bin"));
    EXPECT_EQ(img.config.working_dir, "/");
    EXPECT_EQ(img.config.user, "");
    EXPECT_EQ(img.layer_dirs.size(), e.layers);
    EXPECT_GT(img.size_bytes, 0u);
    for (const auto& d : img.layer_dirs) {
      EXPECT_EQ(fs::path(d).parent_path(), fs::path(root() + "/layers")) << d;
      EXPECT_TRUE(fs::is_directory(d)) << d;
    }
    // The registry's own manifest: the layer count and digests skiff had to fetch.
    std::vector<std::string> digests = LayerDigests(e.name, img.manifest_digest);
    EXPECT_EQ(digests.size(), e.layers);
    distinct_layer_digests.insert(digests.begin(), digests.end());
    // Get finds it by reference and by digest.
    SKIFF_ASSERT_OK_AND_ASSIGN(Image by_ref, store_->Get(registry_->Reference(e.name, e.tag)));
    EXPECT_EQ(by_ref.manifest_digest, img.manifest_digest);
    EXPECT_EQ(by_ref.layer_dirs, img.layer_dirs);
    pulled[key] = img;
  }

  const Image& hello = pulled["hello:latest"];
  ASSERT_EQ(hello.layer_dirs.size(), 2u);
  const std::string& base_dir = hello.layer_dirs[1];
  const std::string& www_dir = hello.layer_dirs[0];
  const struct stat base_st = Lstat(base_dir);
  const struct stat www_st = Lstat(www_dir);
  EXPECT_NE(base_st.st_ino, www_st.st_ino);

  // Every image's two bottom layers are hello's (job has no www layer): same path, same inode.
  for (const auto& [key, img] : pulled) {
    SCOPED_TRACE(key);
    ASSERT_GE(img.layer_dirs.size(), 2u);
    const std::string& bottom = img.layer_dirs.back();
    EXPECT_EQ(bottom, base_dir);
    EXPECT_EQ(Lstat(bottom).st_ino, base_st.st_ino);
    if (key == "job:latest") {
      EXPECT_NE(img.layer_dirs[0], www_dir);
      EXPECT_EQ(Read(img.layer_dirs[0] + "/app/job.sh").rfind("#!/bin/sh", 0), 0u);
      continue;
    }
    const std::string& second = img.layer_dirs[img.layer_dirs.size() - 2];
    EXPECT_EQ(second, www_dir);
    EXPECT_EQ(Lstat(second).st_ino, www_st.st_ino);
  }
  // The app layers of the four run.sh images differ from each other.
  std::set<std::string> app_layers;
  for (const char* n : {"sigterm-handler", "sigterm-ignorer", "forker", "memhog"}) {
    app_layers.insert(pulled[std::string(n) + ":latest"].layer_dirs[0]);
  }
  EXPECT_EQ(app_layers.size(), 4u);

  // Unpacked once: one directory per distinct layer digest, nothing else under layers/.
  // Distinct: busybox, www, four run.sh layers, job.sh, multilayer 3..5.
  EXPECT_EQ(distinct_layer_digests.size(), 10u);
  std::set<std::string> layer_entries = Names(root() + "/layers");
  EXPECT_EQ(layer_entries.size(), distinct_layer_digests.size())
      << absl::StrJoin(layer_entries, " ");
  std::set<std::string> used_dirs;
  for (const auto& [key, img] : pulled) {
    for (const auto& d : img.layer_dirs) used_dirs.insert(fs::path(d).filename().string());
  }
  EXPECT_EQ(used_dirs, layer_entries);
  for (const auto& name : layer_entries) {
    EXPECT_TRUE(fs::is_directory(root() + "/layers/" + name)) << name;
  }

  // multiarch: the index lists arm64 first; skiff selects linux/amd64, hello's manifest.
  std::string index_type;
  nlohmann::json index = Manifest("multiarch", "latest", &index_type);
  EXPECT_EQ(index_type, kOciIndex);
  ASSERT_TRUE(index.is_object() && index.contains("manifests") && index["manifests"].is_array() &&
              index["manifests"].size() == 2)
      << index.dump();
  EXPECT_EQ(index["manifests"][0]["platform"].value("architecture", ""), "arm64");
  EXPECT_NE(index["manifests"][0].value("digest", ""), hello.manifest_digest);
  EXPECT_EQ(index["manifests"][1]["platform"].value("architecture", ""), "amd64");
  const Image& multiarch = pulled["multiarch:latest"];
  EXPECT_EQ(multiarch.manifest_digest, hello.manifest_digest);
  EXPECT_EQ(multiarch.layer_dirs, hello.layer_dirs);

  // hello:docker: a Docker v2 schema 2 manifest (another digest) over the same layer blobs.
  std::string docker_type;
  nlohmann::json docker_manifest = Manifest("hello", "docker", &docker_type);
  EXPECT_EQ(docker_type, kDockerManifest);
  const Image& docker = pulled["hello:docker"];
  EXPECT_NE(docker.manifest_digest, hello.manifest_digest);
  EXPECT_EQ(docker.layer_dirs, hello.layer_dirs);
  EXPECT_EQ(LayerDigests("hello", docker.manifest_digest),
            LayerDigests("hello", hello.manifest_digest));

  // multilayer, file by file in overlayfs form, then merged through overlayfs.
  const Image& ml = pulled["multilayer:latest"];
  CheckMultilayerLayers(ml.layer_dirs);
  TempDir mnt;
  ASSERT_FALSE(mnt.path().empty());
  CheckMultilayerMerged(ml.layer_dirs, mnt.path());
}

// big: ~316 MB, four layers, two 150 MiB data files (run by the `slow` ctest entry).
TEST_F(ExamplesPullTest, BigPullsWithItsDataFilesAndSharedBaseLayers) {
  SKIFF_ASSERT_OK(registry_->PushExampleImages({"hello", "big"}));
  SKIFF_ASSERT_OK_AND_ASSIGN(Image hello, store_->Pull(registry_->Reference("hello"), nullptr));
  SKIFF_ASSERT_OK_AND_ASSIGN(Image big, store_->Pull(registry_->Reference("big"), nullptr));
  EXPECT_EQ(big.config.entrypoint, kHttpdWww);
  EXPECT_THAT(big.config.env, ElementsAre("PATH=/bin"));
  ASSERT_EQ(big.layer_dirs.size(), 4u);
  EXPECT_GT(big.size_bytes, 300'000'000u);
  std::vector<std::string> digests = LayerDigests("big", big.manifest_digest);
  EXPECT_EQ(digests.size(), 4u);
  // Topmost first: data 2, data 1, www, busybox.
  constexpr uintmax_t kSize = 150u << 20;
  EXPECT_EQ(Names(big.layer_dirs[0] + "/data"), (std::set<std::string>{"big-2.bin"}));
  EXPECT_EQ(Names(big.layer_dirs[1] + "/data"), (std::set<std::string>{"big-1.bin"}));
  std::error_code ec;
  EXPECT_EQ(fs::file_size(big.layer_dirs[0] + "/data/big-2.bin", ec), kSize) << ec.message();
  EXPECT_EQ(fs::file_size(big.layer_dirs[1] + "/data/big-1.bin", ec), kSize) << ec.message();
  ASSERT_EQ(hello.layer_dirs.size(), 2u);
  EXPECT_EQ(big.layer_dirs[2], hello.layer_dirs[0]);
  EXPECT_EQ(big.layer_dirs[3], hello.layer_dirs[1]);
  EXPECT_EQ(Names(root() + "/layers").size(), 4u);
}

}  // namespace
}  // namespace skiff::images
