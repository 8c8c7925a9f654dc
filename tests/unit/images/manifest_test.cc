#include "images/manifest.h"

#include <gtest/gtest.h>

#include "images/digest.h"
#include "tests/support/status_matchers.h"

namespace skiff::images {
namespace {

using ::skiff::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::string kD1 = Sha256Digest("one");
const std::string kD2 = Sha256Digest("two");
const std::string kD3 = Sha256Digest("three");

std::string OciManifestJson() {
  return R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
    "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
         kD1 + R"(","size":123},
    "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" +
         kD2 +
         R"(","size":1000},
              {"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":")" +
         kD3 + R"(","size":2000}]})";
}

TEST(ManifestTest, ParsesOciManifest) {
  SKIFF_ASSERT_OK_AND_ASSIGN(std::string mt, DetectMediaType(OciManifestJson(), ""));
  EXPECT_EQ(mt, kOciManifest);
  SKIFF_ASSERT_OK_AND_ASSIGN(Manifest m, ParseManifest(OciManifestJson(), mt));
  EXPECT_EQ(m.config.digest, kD1);
  EXPECT_EQ(m.config.size, 123);
  ASSERT_EQ(m.layers.size(), 2u);
  EXPECT_EQ(m.layers[0].digest, kD2);
  EXPECT_EQ(m.layers[1].size, 2000);
  EXPECT_EQ(*LayerCompressionOf(m.layers[0].media_type), LayerCompression::kGzip);
  EXPECT_EQ(*LayerCompressionOf(m.layers[1].media_type), LayerCompression::kZstd);
}

TEST(ManifestTest, ParsesDockerManifestByContentType) {
  std::string body = R"({"schemaVersion":2,
    "config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":")" +
                     kD1 + R"(","size":5},
    "layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":")" +
                     kD2 + R"(","size":7}]})";
  SKIFF_ASSERT_OK_AND_ASSIGN(
      std::string mt,
      DetectMediaType(body, "application/vnd.docker.distribution.manifest.v2+json; charset=x"));
  EXPECT_EQ(mt, kDockerManifest);
  SKIFF_ASSERT_OK_AND_ASSIGN(Manifest m, ParseManifest(body, mt));
  EXPECT_EQ(m.layers.size(), 1u);
}

TEST(ManifestTest, SelectsLinuxAmd64FromIndex) {
  std::string body = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
    "manifests":[
     {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
                     kD1 + R"(","size":10,"platform":{"os":"linux","architecture":"arm64"}},
     {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
                     kD2 + R"(","size":11,"platform":{"os":"linux","architecture":"amd64"}},
     {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
                     kD3 + R"(","size":12,"platform":{"os":"windows","architecture":"amd64"}}]})";
  SKIFF_ASSERT_OK_AND_ASSIGN(std::string mt, DetectMediaType(body, "application/json"));
  EXPECT_TRUE(IsIndexMediaType(mt));
  SKIFF_ASSERT_OK_AND_ASSIGN(Index index, ParseIndex(body, mt));
  SKIFF_ASSERT_OK_AND_ASSIGN(Descriptor d, SelectPlatform(index));
  EXPECT_EQ(d.digest, kD2);
  EXPECT_EQ(d.size, 11);
  EXPECT_THAT(SelectPlatform(index, "linux", "s390x"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("linux/arm64, linux/amd64")));
}

TEST(ManifestTest, ParsesImageConfig) {
  std::string body = R"({"architecture":"amd64","os":"linux",
    "config":{"Entrypoint":["/bin/sh","-c"],"Cmd":["echo hi"],"Env":["PATH=/bin","A=b=c"],
              "WorkingDir":"/srv","User":"1000:1000","ExposedPorts":{"8080/tcp":{}}},
    "rootfs":{"type":"layers","diff_ids":[")" +
                     kD1 + R"(",")" + kD2 + R"("]},"history":[]})";
  SKIFF_ASSERT_OK_AND_ASSIGN(ParsedConfig c, ParseImageConfig(body));
  EXPECT_EQ(c.os, "linux");
  EXPECT_EQ(c.architecture, "amd64");
  EXPECT_THAT(c.config.entrypoint, ElementsAre("/bin/sh", "-c"));
  EXPECT_THAT(c.config.cmd, ElementsAre("echo hi"));
  EXPECT_THAT(c.config.env, ElementsAre("PATH=/bin", "A=b=c"));
  EXPECT_EQ(c.config.working_dir, "/srv");
  EXPECT_EQ(c.config.user, "1000:1000");
  EXPECT_THAT(c.diff_ids, ElementsAre(kD1, kD2));
  // null config fields are allowed (docker writes them).
  SKIFF_ASSERT_OK_AND_ASSIGN(
      c, ParseImageConfig(R"({"config":{"Cmd":null,"Env":null},"rootfs":{"type":"layers",
                             "diff_ids":[]}})"));
  EXPECT_TRUE(c.config.cmd.empty());
}

TEST(ManifestTest, HostileManifestsAreRefusedNamingTheField) {
  const std::string cfg = R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json",)";
  struct Case {
    std::string body;
    std::string want;
  };
  const std::vector<Case> cases = {
      {"", "invalid JSON"},
      {"[]", "not an object"},
      {"{\"schemaVersion\":2,", "invalid JSON"},
      {std::string(100000, '[') + std::string(100000, ']'), "nested deeper"},
      {std::string(kMaxManifestBytes + 1, ' '), "exceeds the limit"},
      {R"({"schemaVersion":1,"layers":[]})", "schemaVersion"},
      {R"({"schemaVersion":"2","layers":[]})", "schemaVersion"},
      {R"({"schemaVersion":2,"layers":[]})", "config"},
      {R"({"schemaVersion":2,)" + cfg + R"("digest":"sha256:zz","size":1},"layers":[]})",
       "config.digest"},
      {R"({"schemaVersion":2,)" + cfg + R"("digest":")" + kD1 + R"(","size":-1},"layers":[]})",
       "config.size"},
      {R"({"schemaVersion":2,)" + cfg + R"("digest":")" + kD1 + R"(","size":1.5},"layers":[]})",
       "config.size"},
      {R"({"schemaVersion":2,)" + cfg + R"("digest":")" + kD1 + R"(","size":1},"layers":{}})",
       "layers"},
      {R"({"schemaVersion":2,)" + cfg + R"("digest":")" + kD1 +
           R"(","size":1},"layers":[{"mediaType":"text/html","digest":")" + kD2 +
           R"(","size":1}]})",
       "layers[0].mediaType"},
      {R"({"schemaVersion":2,)" + cfg + R"("digest":")" + kD1 +
           R"(","size":1},"layers":[{"mediaType":7,"digest":")" + kD2 + R"(","size":1}]})",
       "layers[0].mediaType"},
      {R"({"schemaVersion":2,)" + cfg + R"("digest":")" + kD1 +
           R"(","size":1},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar",)"
           R"("digest":")" +
           kD2 + R"(","size":99999999999999999999999}]})",
       "layers[0].size"},
      {R"({"schemaVersion":2,"config":{"mediaType":"text/plain","digest":")" + kD1 +
           R"(","size":1},"layers":[]})",
       "config.mediaType"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body.substr(0, 200));
    EXPECT_THAT(ParseManifest(c.body, kOciManifest),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.want)));
  }
  EXPECT_THAT(DetectMediaType(R"({"schemaVersion":1,"mediaType":"x/y"})", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("x/y")));
  EXPECT_THAT(ParseIndex(R"({"schemaVersion":2,"manifests":[{"digest":1}]})", kOciIndex),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("manifests[0].digest")));
}

TEST(ManifestTest, HostileConfigsAreRefused) {
  struct Case {
    std::string body;
    std::string want;
  };
  const std::vector<Case> cases = {
      {R"({"config":{"Env":["NOEQUALS"]},"rootfs":{"type":"layers","diff_ids":[]}})",
       "config.Env[0]"},
      {R"({"config":{"Cmd":"sh"},"rootfs":{"type":"layers","diff_ids":[]}})", "config.Cmd"},
      {R"({"config":{"Entrypoint":[1]},"rootfs":{"type":"layers","diff_ids":[]}})",
       "config.Entrypoint[0]"},
      {R"({"config":{"User":5},"rootfs":{"type":"layers","diff_ids":[]}})", "config.User"},
      {R"({"config":[],"rootfs":{"type":"layers","diff_ids":[]}})", "field config"},
      {R"({"rootfs":{"type":"other","diff_ids":[]}})", "rootfs.type"},
      {R"({"rootfs":{"type":"layers","diff_ids":["sha256:1"]}})", "rootfs.diff_ids[0]"},
      {R"({"os":"linux"})", "rootfs"},
      {"{\"os\":\"lin\xff\"}", "invalid JSON"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body);
    EXPECT_THAT(ParseImageConfig(c.body),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.want)));
  }
}

}  // namespace
}  // namespace skiff::images
