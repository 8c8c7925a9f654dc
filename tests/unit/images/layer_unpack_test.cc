#include "images/layer_unpack.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "images/digest.h"
#include "images/fs_ops.h"
#include "tests/support/status_matchers.h"
#include "tests/unit/images/tar_builder.h"

namespace skiff::images {
namespace {

using ::skiff::images::testing::TarBuilder;
using ::skiff::images::testing::TarCompression;
using ::skiff::testing::StatusIs;
using ::testing::HasSubstr;

// VFS_CAP_REVISION_2 | EFFECTIVE, permitted = CAP_NET_RAW.
const std::string kNetRawCap =
    std::string("\x01\x00\x00\x02\x00\x20\x00\x00", 8) + std::string(12, '\0');

class LayerUnpackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "layer unpacking creates devices and owners: needs root";
    char tmpl[] = "/tmp/skiff-unpack-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    layers_ = root_ + "/layers";
    outside_ = root_ + "/outside";
    ASSERT_EQ(mkdir(layers_.c_str(), 0700), 0);
    ASSERT_EQ(mkdir(outside_.c_str(), 0700), 0);
  }
  void TearDown() override { SKIFF_EXPECT_OK(RemoveTree(root_)); }

  // Writes `tar` as a blob file and unpacks it; returns the layer dir.
  absl::StatusOr<std::string> Unpack(const std::string& tar, const UnpackLimits& limits = {}) {
    std::string blob = root_ + "/blob-" + std::to_string(++n_);
    std::ofstream(blob, std::ios::binary) << tar;
    return UnpackLayer(blob, Sha256Digest(tar), layers_, limits);
  }

  static std::string Read(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }
  static struct stat Lstat(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(lstat(path.c_str(), &st), 0) << path;
    return st;
  }
  // Only the finished layer dirs, no temp dirs, remain in layers/.
  void ExpectNoTempDirs() {
    for (const auto& e : std::filesystem::directory_iterator(layers_)) {
      EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
    }
  }

  std::string root_, layers_, outside_;
  int n_ = 0;
};

TEST_F(LayerUnpackTest, PreservesFileTypesOwnersModesAndXattrs) {
  for (TarCompression c : {TarCompression::kNone, TarCompression::kGzip, TarCompression::kZstd}) {
    SCOPED_TRACE(static_cast<int>(c));
    TarBuilder tar(c);
    tar.Dir("./bin", 0755)
        .File("./bin/su", "setuid binary", 04755, 0, 0)
        .File("bin/tool", std::string(300000, 't'), 0750, 1000, 2000,
              {{"user.note", "hello"},
               {"trusted.overlay.redirect", "/etc"},
               {"security.capability", kNetRawCap}})
        .Dir("home/app", 01777, 1000, 1000)
        .Symlink("bin/sh", "/bin/busybox")
        .Hardlink("bin/tool2", "bin/tool")
        .CharDev("dev/null", 1, 3)
        .Fifo("run/fifo", 0600)
        .File("bin/su2", "x", 02711);
    const std::string bytes = tar.Finish();
    SKIFF_ASSERT_OK_AND_ASSIGN(std::string dir, Unpack(bytes));
    EXPECT_EQ(dir, layers_ + "/" + DigestHex(Sha256Digest(bytes)));

    struct stat su = Lstat(dir + "/bin/su");
    EXPECT_TRUE(S_ISREG(su.st_mode));
    EXPECT_EQ(su.st_mode & 07777, 04755u);
    EXPECT_EQ(Read(dir + "/bin/su"), "setuid binary");
    EXPECT_EQ(Lstat(dir + "/bin/su2").st_mode & 07777, 02711u);
    EXPECT_EQ(su.st_mtim.tv_sec, 1700000000);

    struct stat tool = Lstat(dir + "/bin/tool");
    EXPECT_EQ(tool.st_uid, 1000u);
    EXPECT_EQ(tool.st_gid, 2000u);
    EXPECT_EQ(tool.st_mode & 07777, 0750u);
    EXPECT_EQ(Read(dir + "/bin/tool"), std::string(300000, 't'));
    char buf[64];
    ssize_t n = lgetxattr((dir + "/bin/tool").c_str(), "user.note", buf, sizeof(buf));
    EXPECT_EQ(std::string(buf, n > 0 ? n : 0), "hello");
    EXPECT_EQ(lgetxattr((dir + "/bin/tool").c_str(), "trusted.overlay.redirect", buf, sizeof(buf)),
              -1)
        << "overlay xattrs from the archive must be dropped";
    EXPECT_GT(lgetxattr((dir + "/bin/tool").c_str(), "security.capability", buf, sizeof(buf)), 0);

    struct stat tool2 = Lstat(dir + "/bin/tool2");
    EXPECT_EQ(tool2.st_ino, tool.st_ino);
    EXPECT_EQ(tool.st_nlink, 2u);

    struct stat home = Lstat(dir + "/home/app");
    EXPECT_TRUE(S_ISDIR(home.st_mode));
    EXPECT_EQ(home.st_mode & 07777, 01777u);
    EXPECT_EQ(home.st_uid, 1000u);
    EXPECT_TRUE(S_ISDIR(Lstat(dir + "/home").st_mode));  // implicit parent

    EXPECT_TRUE(S_ISLNK(Lstat(dir + "/bin/sh").st_mode));
    EXPECT_EQ(std::filesystem::read_symlink(dir + "/bin/sh"), "/bin/busybox");

    struct stat null = Lstat(dir + "/dev/null");
    EXPECT_TRUE(S_ISCHR(null.st_mode));
    EXPECT_EQ(major(null.st_rdev), 1u);
    EXPECT_EQ(minor(null.st_rdev), 3u);
    EXPECT_EQ(null.st_mode & 07777, 0666u);
    struct stat fifo = Lstat(dir + "/run/fifo");
    EXPECT_TRUE(S_ISFIFO(fifo.st_mode));
    EXPECT_EQ(fifo.st_mode & 07777, 0600u);
  }
  ExpectNoTempDirs();
}

TEST_F(LayerUnpackTest, ConvertsOciWhiteoutsToOverlayForm) {
  SKIFF_ASSERT_OK_AND_ASSIGN(std::string dir, Unpack(TarBuilder()
                                                         .Dir("etc")
                                                         .File("etc/.wh.removed.conf", "")
                                                         .Dir("var/cache")
                                                         .File("var/cache/.wh..wh..opq", "")
                                                         .File("var/cache/new", "fresh")
                                                         .File(".wh.toplevel", "")
                                                         .Dir(".wh..wh.plnk")
                                                         .File(".wh..wh.plnk/123.456", "aufs")
                                                         .Finish()));
  struct stat wh = Lstat(dir + "/etc/removed.conf");
  EXPECT_TRUE(S_ISCHR(wh.st_mode));
  EXPECT_EQ(wh.st_rdev, makedev(0, 0));
  EXPECT_EQ(wh.st_uid, 0u);
  EXPECT_TRUE(S_ISCHR(Lstat(dir + "/toplevel").st_mode));
  EXPECT_FALSE(std::filesystem::exists(dir + "/.wh..wh.plnk"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/.wh.plnk"));
  EXPECT_FALSE(
      std::filesystem::exists(std::filesystem::symlink_status(dir + "/etc/.wh.removed.conf")));
  char buf[8];
  ssize_t n = lgetxattr((dir + "/var/cache").c_str(), "trusted.overlay.opaque", buf, sizeof(buf));
  ASSERT_EQ(n, 1);
  EXPECT_EQ(buf[0], 'y');
  EXPECT_FALSE(
      std::filesystem::exists(std::filesystem::symlink_status(dir + "/var/cache/.wh..wh..opq")));
  EXPECT_EQ(Read(dir + "/var/cache/new"), "fresh");
  EXPECT_EQ(lgetxattr((dir + "/etc").c_str(), "trusted.overlay.opaque", buf, sizeof(buf)), -1);
}

TEST_F(LayerUnpackTest, RefusesEntriesThatEscapeTheLayer) {
  struct Case {
    const char* name;
    std::string tar;
    const char* want;
  };
  const std::string victim = outside_ + "/victim";
  std::ofstream(victim) << "original";
  std::vector<Case> cases;
  cases.push_back({"dotdot", TarBuilder().File("../escape", "x").Finish(), "\"..\""});
  cases.push_back(
      {"nested dotdot", TarBuilder().Dir("a").File("a/../../escape", "x").Finish(), "\"..\""});
  cases.push_back({"absolute", TarBuilder().File(outside_ + "/abs", "x").Finish(), "absolute"});
  cases.push_back({"write through symlink dir",
                   TarBuilder().Symlink("link", outside_).File("link/through", "x").Finish(),
                   "symlink"});
  cases.push_back({"write through relative symlink",
                   TarBuilder().Symlink("up", "../../outside").File("up/through", "x").Finish(),
                   "symlink"});
  cases.push_back({"whiteout through symlink",
                   TarBuilder().Symlink("link", outside_).File("link/.wh.victim", "").Finish(),
                   "symlink"});
  cases.push_back(
      {"hardlink dotdot", TarBuilder().Hardlink("h", "../outside/victim").Finish(), "\"..\""});
  cases.push_back({"hardlink absolute", TarBuilder().Hardlink("h", victim).Finish(), "absolute"});
  cases.push_back({"hardlink through symlink",
                   TarBuilder().Symlink("link", outside_).Hardlink("h", "link/victim").Finish(),
                   "hardlink target"});
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::string digest = Sha256Digest(c.tar);
    auto dir = Unpack(c.tar);
    EXPECT_THAT(dir, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.want)));
    EXPECT_THAT(dir, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(digest)));
    EXPECT_FALSE(std::filesystem::exists(layers_ + "/" + DigestHex(digest)));
  }
  // Nothing was created outside, the victim is untouched and has one link.
  EXPECT_FALSE(std::filesystem::exists(root_ + "/escape"));
  EXPECT_FALSE(std::filesystem::exists(outside_ + "/abs"));
  EXPECT_FALSE(std::filesystem::exists(outside_ + "/through"));
  EXPECT_EQ(Read(victim), "original");
  EXPECT_EQ(Lstat(victim).st_nlink, 1u);
  EXPECT_TRUE(S_ISREG(Lstat(victim).st_mode));
  ExpectNoTempDirs();
}

TEST_F(LayerUnpackTest, LaterEntriesReplaceWithoutFollowingSymlinks) {
  const std::string victim = outside_ + "/victim";
  std::ofstream(victim) << "original";
  SKIFF_ASSERT_OK_AND_ASSIGN(std::string dir, Unpack(TarBuilder()
                                                         .Symlink("s", victim)
                                                         .File("s", "replaced")
                                                         .Symlink("d", outside_)
                                                         .Dir("d", 0700)
                                                         .File("d/inside", "in")
                                                         .Finish()));
  EXPECT_TRUE(S_ISREG(Lstat(dir + "/s").st_mode));
  EXPECT_EQ(Read(dir + "/s"), "replaced");
  EXPECT_TRUE(S_ISDIR(Lstat(dir + "/d").st_mode));
  EXPECT_EQ(Read(dir + "/d/inside"), "in");
  EXPECT_EQ(Read(victim), "original");
  EXPECT_FALSE(std::filesystem::exists(outside_ + "/inside"));
}

TEST_F(LayerUnpackTest, SharedLayerIsUnpackedOnceAndBadDataIsDataLoss) {
  const std::string tar = TarBuilder(TarCompression::kGzip).File("f", "v1").Finish();
  SKIFF_ASSERT_OK_AND_ASSIGN(std::string first, Unpack(tar));
  // Mark the unpacked dir: a second unpack of the same layer must not redo it.
  std::ofstream(first + "/marker") << "m";
  SKIFF_ASSERT_OK_AND_ASSIGN(std::string second, Unpack(tar));
  EXPECT_EQ(first, second);
  EXPECT_TRUE(std::filesystem::exists(second + "/marker"));

  std::string truncated =
      TarBuilder(TarCompression::kGzip).File("big", std::string(1 << 20, 'q')).Finish();
  truncated.resize(truncated.size() / 2);
  auto r = Unpack(truncated);
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kDataLoss, HasSubstr(Sha256Digest(truncated))));
  EXPECT_THAT(Unpack("this is not a tar file at all, not even close......"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ExpectNoTempDirs();
}

TEST_F(LayerUnpackTest, DecompressionBombsHitTheLimits) {
  // 64 MiB of zeros compress to ~64 KiB.
  const std::string bomb =
      TarBuilder(TarCompression::kGzip).File("zeros", std::string(64 << 20, '\0')).Finish();
  ASSERT_LT(bomb.size(), 1u << 20);
  EXPECT_THAT(Unpack(bomb, UnpackLimits{.max_bytes = 16 << 20, .max_entries = 100}),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("\"zeros\"")));
  TarBuilder many(TarCompression::kGzip);
  for (int i = 0; i < 200; ++i) many.File("f" + std::to_string(i), "");
  EXPECT_THAT(Unpack(many.Finish(), UnpackLimits{.max_bytes = 1 << 20, .max_entries = 100}),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("100 entries")));
  ExpectNoTempDirs();
  // Within the limits the same layer unpacks.
  SKIFF_ASSERT_OK_AND_ASSIGN(std::string dir, Unpack(bomb));
  EXPECT_EQ(std::filesystem::file_size(dir + "/zeros"), 64u << 20);
}

}  // namespace
}  // namespace skiff::images
