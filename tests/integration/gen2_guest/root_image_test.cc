// The erofs root image builder (privileged: mounts). Two layer dirs in overlayfs form — a
// whiteout, an opaque dir, owners, modes, setuid, symlinks, mtimes — are built into an
// image that is then loop-mounted read-only in a throwaway mount namespace and compared
// with the read-only overlay of the same layers, entry by entry. Nothing is left mounted,
// attached or on disk.

#include "sandbox/gen2/guest/root_image.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace skiff::gen2::guest {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string Shell(const std::string& command, int* exit_code = nullptr) {
  FILE* p = popen(command.c_str(), "r");
  EXPECT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int status = pclose(p);
  if (exit_code != nullptr) {
    *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  } else {
    EXPECT_EQ(status, 0) << command;
  }
  return out;
}

void File(const std::string& path, const std::string& content, mode_t mode, uid_t uid, gid_t gid) {
  std::ofstream(path, std::ios::binary) << content;
  ASSERT_EQ(lchown(path.c_str(), uid, gid), 0) << path;  // before chmod: chown clears setuid
  ASSERT_EQ(chmod(path.c_str(), mode), 0) << path;
  timeval times[2] = {{1600000000, 0}, {1600000000, 0}};
  ASSERT_EQ(utimes(path.c_str(), times), 0) << path;
}

void Dir(const std::string& path, mode_t mode, uid_t uid = 0, gid_t gid = 0) {
  ASSERT_EQ(mkdir(path.c_str(), mode), 0) << path;
  ASSERT_EQ(chmod(path.c_str(), mode), 0) << path;
  ASSERT_EQ(chown(path.c_str(), uid, gid), 0) << path;
}

// A shell script printing "<path> <type> <mode> <uid> <gid> <mtime> <link target>" per
// entry, sorted, then the size of every non-directory (a directory's size is the file
// system's business) and the md5 of every regular file, of the tree mounted at $M.
constexpr char kListing[] =
    "cd \"$M\"\n"
    "find . -printf '%P %y %m %U %G %T@ %l\\n' | sort\n"
    "find . ! -type d -printf '%P size=%s\\n' | sort\n"
    "find . -type f | sort | xargs -r md5sum\n";

class RootImageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "needs root (mounts)";
    char tmpl[] = "/tmp/skiff-root-image-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    bottom_ = dir_ + "/layer0";
    top_ = dir_ + "/layer1";
    out_dir_ = dir_ + "/out";
    Dir(out_dir_, 0755);
    // The bottom layer.
    Dir(bottom_, 0755);
    Dir(bottom_ + "/a", 0755);
    File(bottom_ + "/a/file1", "one\n", 0644, 1000, 1000);
    File(bottom_ + "/a/gone", "deleted above\n", 0644, 0, 0);
    Dir(bottom_ + "/opq", 0755);
    File(bottom_ + "/opq/old", "hidden by the opaque dir above\n", 0644, 0, 0);
    Dir(bottom_ + "/bin", 0755);
    File(bottom_ + "/bin/tool", "#!/bin/sh\n", 04755, 0, 0);
    Dir(bottom_ + "/e", 0700, 5, 6);
    ASSERT_EQ(symlink("a/file1", (bottom_ + "/link").c_str()), 0);
    // The top layer: a new file, a whiteout, an opaque dir, a dangling absolute symlink.
    Dir(top_, 0755);
    Dir(top_ + "/a", 0755);
    File(top_ + "/a/new", "new\n", 0600, 123, 456);
    ASSERT_EQ(mknod((top_ + "/a/gone").c_str(), S_IFCHR | 0000, makedev(0, 0)), 0);
    Dir(top_ + "/opq", 0750, 7, 8);
    ASSERT_EQ(setxattr((top_ + "/opq").c_str(), "trusted.overlay.opaque", "y", 1, 0), 0);
    File(top_ + "/opq/fresh", "fresh\n", 0640, 9, 10);
    ASSERT_EQ(symlink("/abs/target", (top_ + "/link2").c_str()), 0);
  }
  void TearDown() override { Shell("rm -rf '" + dir_ + "'"); }

  // The listing of the erofs `image` and of the read-only overlay of `lowerdir`, each
  // mounted in a private mount namespace that ends with the shell.
  void Listings(const std::string& image, const std::string& lowerdir, std::string* erofs,
                std::string* overlay) {
    const std::string m = dir_ + "/mnt";
    Dir(m, 0755);
    const std::string script = dir_ + "/list.sh";
    std::ofstream(script) << "set -e\nM=" << m << "\n"
                          << "mount -t erofs -o loop,ro " << image << " $M\n"
                          << kListing;
    *erofs = Shell("unshare -m --propagation private sh " + script);
    std::ofstream(script) << "set -e\nM=" << m << "\n"
                          << "mount -t overlay -o ro,lowerdir=" << lowerdir << " overlay $M\n"
                          << kListing;
    *overlay = Shell("unshare -m --propagation private sh " + script);
    ASSERT_EQ(unlink(script.c_str()), 0);
    ASSERT_EQ(rmdir(m.c_str()), 0);
  }

  std::string dir_, bottom_, top_, out_dir_;
};

TEST_F(RootImageTest, TwoLayersWithWhiteoutAndOpaqueDirMatchTheOverlay) {
  const std::string image = out_dir_ + "/root.erofs";
  absl::Status s = BuildRootImage({{top_, bottom_}}, image);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Shell("ls -A '" + out_dir_ + "'"), "root.erofs\n");  // no temp files left
  EXPECT_EQ(Shell("blkid -o value -s TYPE '" + image + "'"), "erofs\n");

  std::string erofs, overlay;
  Listings(image, top_ + ":" + bottom_, &erofs, &overlay);
  EXPECT_EQ(erofs, overlay);
  // The merged view, spelled out.
  EXPECT_THAT(erofs, HasSubstr("a/file1 f 644 1000 1000 1600000000.0000000000 \n"));
  EXPECT_THAT(erofs, HasSubstr("a/new f 600 123 456 1600000000.0000000000 \n"));
  EXPECT_THAT(erofs, HasSubstr("bin/tool f 4755 0 0 "));
  EXPECT_THAT(erofs, HasSubstr("\ne d 700 5 6 "));
  EXPECT_THAT(erofs, HasSubstr("\nopq d 750 7 8 "));
  EXPECT_THAT(erofs, HasSubstr("opq/fresh f 640 9 10 "));
  EXPECT_THAT(erofs, HasSubstr("\nlink l 777 0 0 "));
  EXPECT_THAT(erofs, HasSubstr(" a/file1\n"));
  EXPECT_THAT(erofs, HasSubstr(" /abs/target\n"));
  EXPECT_THAT(erofs, Not(HasSubstr("a/gone")));   // whited out
  EXPECT_THAT(erofs, Not(HasSubstr("opq/old")));  // under the opaque dir
  EXPECT_THAT(erofs, HasSubstr("\nbin/tool size=10\n"));
  EXPECT_THAT(erofs, HasSubstr("  ./a/new\n"));  // md5 lines: contents compared too
  // No loop device still attached to the image.
  EXPECT_EQ(Shell("losetup -j '" + image + "'"), "");
}

// One layer gets an empty layer beneath it, so that its root is a merged dir whose
// whiteouts the overlay hides. (A whiteout inside a dir that only one layer has — which no
// image builder emits: there would be nothing to hide — shows in the overlay's readdir but
// not in its lookup, and mkfs.erofs fails on it with ENOENT.)
TEST_F(RootImageTest, SingleLayerDropsWhiteoutsAtItsRoot) {
  ASSERT_EQ(mknod((bottom_ + "/rootgone").c_str(), S_IFCHR | 0000, makedev(0, 0)), 0);
  const std::string image = out_dir_ + "/one.erofs";
  absl::Status s = BuildRootImage({{bottom_}}, image);
  ASSERT_TRUE(s.ok()) << s;
  std::string erofs, overlay;
  Dir(dir_ + "/empty", 0755);
  Listings(image, bottom_ + ":" + dir_ + "/empty", &erofs, &overlay);
  EXPECT_EQ(erofs, overlay);
  EXPECT_THAT(erofs, HasSubstr("a/gone f 644 0 0 "));
  EXPECT_THAT(erofs, HasSubstr("opq/old f 644 0 0 "));
  EXPECT_THAT(erofs, Not(HasSubstr("rootgone")));
  EXPECT_THAT(erofs, Not(HasSubstr("a/new")));
}

TEST_F(RootImageTest, BadInputIsRefusedAndLeavesNothing) {
  const std::string image = out_dir_ + "/bad.erofs";
  absl::Status s = BuildRootImage({{"relative/dir"}}, image);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  s = BuildRootImage({{dir_ + "/has:colon"}}, image);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("':'"));
  s = BuildRootImage({{dir_ + "/missing"}}, image);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  s = BuildRootImage({}, image);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  // mkfs.erofs failing (here: not mkfs.erofs at all) is reported with its output.
  RootImageSpec spec{{top_, bottom_}, "/bin/false"};
  s = BuildRootImage(spec, image);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(s.message(), HasSubstr("/bin/false"));
  spec.mkfs_erofs = dir_ + "/no-such-mkfs";
  s = BuildRootImage(spec, image);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("execve"));
  EXPECT_EQ(Shell("ls -A '" + out_dir_ + "'"), "");
  // The overlay mounts lived only in the builder's child namespaces.
  EXPECT_THAT(Shell("cat /proc/self/mountinfo"), Not(HasSubstr(dir_)));
}

}  // namespace
}  // namespace skiff::gen2::guest
