// ImageStore behaviour that needs no registry: options and refs.json validation, lookups
// of unknown images, and cleanup of a previous process's leftovers.

#include "images/image_store.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "images/digest.h"
#include "images/fs_ops.h"
#include "tests/support/status_matchers.h"

namespace skiff::images {
namespace {

using ::skiff::testing::StatusIs;
using ::testing::HasSubstr;

class ImageStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/skiff-store-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
  }
  void TearDown() override { SKIFF_EXPECT_OK(RemoveTree(root_)); }
  StoreOptions Options() {
    StoreOptions o;
    o.root = root_;
    return o;
  }
  std::string root_;
};

TEST_F(ImageStoreTest, RefusesARelativeRoot) {
  StoreOptions o;
  o.root = "relative/dir";
  EXPECT_THAT(ImageStore::Open(o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("relative/dir")));
}

TEST_F(ImageStoreTest, UnknownImagesAreNotFoundAndBadKeysInvalid) {
  SKIFF_ASSERT_OK_AND_ASSIGN(auto store, ImageStore::Open(Options()));
  EXPECT_TRUE(store->List().empty());
  EXPECT_THAT(store->Get("busybox"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("docker.io/library/busybox:latest")));
  EXPECT_THAT(store->Get(Sha256Digest("x")), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store->Get("sha256:nothex"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(store->Remove("busybox:1"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store->Pull("UPPER:case", nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("UPPER:case")));
}

TEST_F(ImageStoreTest, CorruptRefsJsonIsDataLossNamingTheFile) {
  for (const char* bad :
       {"{not json", "[]", R"({"images":{}})",
        R"({"images":[{"digest":"sha256:zz","references":[]}]})", R"({"images":[{"digest":1}]})"}) {
    SCOPED_TRACE(bad);
    std::ofstream(root_ + "/refs.json", std::ios::trunc) << bad;
    auto store = ImageStore::Open(Options());
    ASSERT_FALSE(store.ok());
    EXPECT_THAT(std::string(store.status().message()), HasSubstr("refs.json"));
  }
}

TEST_F(ImageStoreTest, OpenRemovesLeftoversOfAnInterruptedPull) {
  ASSERT_EQ(mkdir((root_ + "/layers").c_str(), 0700), 0);
  const std::string hex = DigestHex(Sha256Digest("layer"));
  const std::string tmp_layer = root_ + "/layers/" + hex + ".tmp-1-1";
  ASSERT_EQ(mkdir(tmp_layer.c_str(), 0700), 0);
  std::ofstream(tmp_layer + "/half") << "written";
  std::filesystem::create_directories(root_ + "/blobs/sha256");
  const std::string tmp_blob = root_ + "/blobs/sha256/.tmp-" + hex + "-1-1";
  std::ofstream(tmp_blob) << "partial";
  SKIFF_ASSERT_OK_AND_ASSIGN(auto store, ImageStore::Open(Options()));
  EXPECT_FALSE(std::filesystem::exists(tmp_layer));
  EXPECT_FALSE(std::filesystem::exists(tmp_blob));
  EXPECT_TRUE(std::filesystem::is_directory(root_ + "/layers"));
}

}  // namespace
}  // namespace skiff::images
