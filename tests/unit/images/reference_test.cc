#include "images/reference.h"

#include <gtest/gtest.h>

#include "tests/support/status_matchers.h"

namespace skiff::images {
namespace {

using ::skiff::testing::StatusIs;
using ::testing::HasSubstr;

struct Good {
  const char* in;
  const char* registry;
  const char* repository;
  const char* tag;
  const char* digest;
  const char* normalized;
};

constexpr char kHex[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

TEST(ReferenceTest, ParsesAndNormalizesGoodReferences) {
  const std::string d = std::string("sha256:") + kHex;
  const std::vector<Good> cases = {
      {"busybox", "docker.io", "library/busybox", "latest", "", "docker.io/library/busybox:latest"},
      {"busybox:1.36", "docker.io", "library/busybox", "1.36", "",
       "docker.io/library/busybox:1.36"},
      {"library/busybox", "docker.io", "library/busybox", "latest", "",
       "docker.io/library/busybox:latest"},
      {"index.docker.io/foo/bar:v1", "docker.io", "foo/bar", "v1", "", "docker.io/foo/bar:v1"},
      {"ghcr.io/org/sub/app:1.0-rc_1", "ghcr.io", "org/sub/app", "1.0-rc_1", "",
       "ghcr.io/org/sub/app:1.0-rc_1"},
      {"127.0.0.1:5000/hello", "127.0.0.1:5000", "hello", "latest", "",
       "127.0.0.1:5000/hello:latest"},
      {"localhost/a/b", "localhost", "a/b", "latest", "", "localhost/a/b:latest"},
      {"localhost:8080/a__b.c-d---e", "localhost:8080", "a__b.c-d---e", "latest", "",
       "localhost:8080/a__b.c-d---e:latest"},
  };
  for (const Good& c : cases) {
    SCOPED_TRACE(c.in);
    SKIFF_ASSERT_OK_AND_ASSIGN(Reference r, ParseReference(c.in));
    EXPECT_EQ(r.registry, c.registry);
    EXPECT_EQ(r.repository, c.repository);
    EXPECT_EQ(r.tag, c.tag);
    EXPECT_EQ(r.digest, c.digest);
    EXPECT_EQ(r.String(), c.normalized);
  }
  SKIFF_ASSERT_OK_AND_ASSIGN(Reference r, ParseReference("busybox@" + d));
  EXPECT_EQ(r.tag, "");
  EXPECT_EQ(r.digest, d);
  EXPECT_EQ(r.TagOrDigest(), d);
  EXPECT_EQ(r.String(), "docker.io/library/busybox@" + d);
  EXPECT_EQ(r.ApiHost(), "registry-1.docker.io");
  SKIFF_ASSERT_OK_AND_ASSIGN(r, ParseReference("127.0.0.1:5000/x/y:t@" + d));
  EXPECT_EQ(r.tag, "t");
  EXPECT_EQ(r.digest, d);
  EXPECT_EQ(r.ApiHost(), "127.0.0.1:5000");
}

TEST(ReferenceTest, RefusesBadReferencesNamingThem) {
  const std::vector<std::string> bad = {
      "",
      "UPPER/case",
      "busybox:",
      "busybox:-tag",
      "busybox:" + std::string(129, 'a'),
      "busybox@sha256:abc",
      "busybox@md5:" + std::string(kHex).substr(0, 32),
      std::string("busybox@sha256:") + std::string(64, 'G'),
      "a//b",
      "/abs",
      "trailing/",
      "bad..dots",
      "-leading",
      "has space",
      "tab\tx",
      "reg.io:99999/x",
      "reg.io:port/x",
      "-bad.io/x",
      "x/../y",
      ":tag",
      std::string(600, 'a'),
      "caf\xc3\xa9",
  };
  for (const std::string& b : bad) {
    SCOPED_TRACE(b);
    auto r = ParseReference(b);
    EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("image reference")));
    if (!b.empty() && b.size() < 100 && b.find('\t') == std::string::npos) {
      EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(b)));
    }
  }
}

}  // namespace
}  // namespace skiff::images
