// Registry protocol edge cases: the bearer-token challenge flow and retry policy against
// an in-test HTTP server; HTTP basic auth and TLS with a private CA against a real
// docker-registry.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "images/digest.h"
#include "images/image_store.h"
#include "images/manifest.h"
#include "images/registry_client.h"
#include "tests/integration/images/http_test_server.h"
#include "tests/integration/images/local_registry.h"
#include "tests/support/status_matchers.h"
#include "tests/unit/images/tar_builder.h"

namespace skiff::images {
namespace {

using ::skiff::images::testing::HttpRequest;
using ::skiff::images::testing::HttpResponse;
using ::skiff::images::testing::HttpTestServer;
using ::skiff::images::testing::LocalRegistry;
using ::skiff::images::testing::PushAuth;
using ::skiff::images::testing::PushImage;
using ::skiff::images::testing::TarBuilder;
using ::skiff::images::testing::TarCompression;
using ::skiff::images::testing::TempDir;
using ::skiff::images::testing::TestLayer;
using ::skiff::testing::StatusIs;
using ::testing::HasSubstr;

// The bytes of a one-layer image served by the in-test server.
struct ServedImage {
  std::string layer, config, manifest;
  std::string layer_digest, config_digest, manifest_digest;
  ServedImage() {
    TarBuilder plain;
    plain.File("hello", "from a token-protected registry");
    std::string tar = plain.Finish();
    layer = tar;
    layer_digest = Sha256Digest(layer);
    config = R"({"architecture":"amd64","os":"linux","config":{"Cmd":["/hello"]},)"
             R"("rootfs":{"type":"layers","diff_ids":[")" +
             Sha256Digest(tar) + R"("]}})";
    config_digest = Sha256Digest(config);
    manifest = std::string(R"({"schemaVersion":2,"config":{"mediaType":")") + kOciConfig +
               R"(","digest":")" + config_digest + R"(","size":)" + std::to_string(config.size()) +
               R"(},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":")" +
               layer_digest + R"(","size":)" + std::to_string(layer.size()) + "}]}";
    manifest_digest = Sha256Digest(manifest);
  }
  // Serves /v2/app/manifests/v1 and blobs; nullopt-like status 0 for other paths.
  HttpResponse Serve(const std::string& target) const {
    if (target == "/v2/app/manifests/v1" || target == "/v2/app/manifests/" + manifest_digest) {
      return {200,
              {{"Content-Type", kOciManifest}, {"Docker-Content-Digest", manifest_digest}},
              manifest};
    }
    if (target == "/v2/app/blobs/" + config_digest) return {200, {}, config};
    if (target == "/v2/app/blobs/" + layer_digest) return {200, {}, layer};
    return {
        404, {}, R"({"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known"}]})"};
  }
};

RegistryOptions FastRetries(const std::string& insecure_host) {
  RegistryOptions o;
  o.insecure_registries = {insecure_host};
  o.max_attempts = 3;
  o.initial_backoff_ms = 10;
  return o;
}

class BearerTest : public ::testing::Test {
 protected:
  StoreOptions Options(const std::string& host) {
    StoreOptions o;
    o.root = dir_.path() + "/store";
    o.insecure_registries = {host};
    o.max_attempts = 3;
    o.initial_backoff_ms = 10;
    return o;
  }
  TempDir dir_;
  ServedImage image_;
};

TEST_F(BearerTest, ChallengeTokenAndRetryWithBearer) {
  std::atomic<int> token_requests = 0, authorized = 0;
  std::string seen_scope, seen_basic, last_method;
  int port = 0;
  HttpTestServer server([&](const HttpRequest& r) -> HttpResponse {
    if (absl::StartsWith(r.target, "/token?")) {
      ++token_requests;
      seen_scope = r.target;
      auto it = r.headers.find("authorization");
      seen_basic = it == r.headers.end() ? "" : it->second;
      if (seen_basic != "Basic dXNlcjpzM2NyZXQ=") return {401, {}, ""};  // user:s3cret
      return {200, {{"Content-Type", "application/json"}}, R"({"token":"tok-123"})"};
    }
    auto it = r.headers.find("authorization");
    if (it == r.headers.end() || it->second != "Bearer tok-123") {
      return {401,
              {{"WWW-Authenticate",
                absl::StrCat(R"(Bearer realm="http://127.0.0.1:)", port,
                             R"(/token",service="test.registry",scope="repository:app:pull")")}},
              R"({"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]})"};
    }
    ++authorized;
    last_method = r.method;
    return image_.Serve(r.target);
  });
  port = server.port();
  StoreOptions o = Options(server.host_port());
  o.credentials[server.host_port()] = {"user", "s3cret"};
  SKIFF_ASSERT_OK_AND_ASSIGN(auto store, ImageStore::Open(o));
  SKIFF_ASSERT_OK_AND_ASSIGN(Image img, store->Pull(server.host_port() + "/app:v1", nullptr));
  EXPECT_EQ(img.manifest_digest, image_.manifest_digest);
  std::ifstream f(img.layer_dirs[0] + "/hello");
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(f), {}), "from a token-protected registry");
  EXPECT_EQ(token_requests, 1) << "the token is cached for the blobs";
  EXPECT_EQ(authorized, 3);  // manifest, config, layer
  EXPECT_THAT(seen_scope, HasSubstr("service=test.registry"));
  EXPECT_THAT(seen_scope, HasSubstr("scope=repository%3Aapp%3Apull"));

  // Pulling the tag again costs one HEAD: the tag still points at the stored image.
  int before = server.requests();
  SKIFF_ASSERT_OK_AND_ASSIGN(Image again, store->Pull(server.host_port() + "/app:v1", nullptr));
  EXPECT_EQ(again.manifest_digest, image_.manifest_digest);
  EXPECT_EQ(again.layer_dirs, img.layer_dirs);
  EXPECT_EQ(server.requests() - before, 1);
  EXPECT_EQ(last_method, "HEAD");

  // Without credentials the token endpoint refuses → PermissionDenied naming the ref.
  StoreOptions anon = Options(server.host_port());
  anon.root = dir_.path() + "/anon";
  SKIFF_ASSERT_OK_AND_ASSIGN(auto anon_store, ImageStore::Open(anon));
  EXPECT_THAT(anon_store->Pull(server.host_port() + "/app:v1", nullptr),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("app:v1")));
}

TEST_F(BearerTest, RealmMustNotDowngradeToPlainHttpElsewhere) {
  HttpTestServer server([&](const HttpRequest&) -> HttpResponse {
    return {401, {{"WWW-Authenticate", R"(Bearer realm="http://198.51.100.1/token")"}}, ""};
  });
  SKIFF_ASSERT_OK_AND_ASSIGN(auto store, ImageStore::Open(Options(server.host_port())));
  EXPECT_THAT(store->Pull(server.host_port() + "/app:v1", nullptr),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("must be https")));
}

TEST_F(BearerTest, RetriesServerErrorsButNotClientErrors) {
  std::atomic<int> calls = 0;
  HttpTestServer server([&](const HttpRequest& r) -> HttpResponse {
    int n = ++calls;
    if (r.target == "/v2/app/manifests/v1" && n == 1) return {503, {}, "busy"};
    if (r.target == "/v2/app/manifests/v1" && n == 2) return {429, {}, "slow down"};
    return image_.Serve(r.target);
  });
  RegistryClient client(FastRetries(server.host_port()));
  SKIFF_ASSERT_OK_AND_ASSIGN(Reference ref, ParseReference(server.host_port() + "/app:v1"));
  SKIFF_ASSERT_OK_AND_ASSIGN(FetchedManifest m, client.GetManifest(ref, "v1"));
  EXPECT_EQ(m.digest, image_.manifest_digest);
  EXPECT_EQ(client.requests_performed(), 3);
  // 404 is final: one request, NotFound naming the manifest.
  SKIFF_ASSERT_OK_AND_ASSIGN(Reference other, ParseReference(server.host_port() + "/nope:v1"));
  EXPECT_THAT(client.GetManifest(other, "v1"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("nope:v1")));
  EXPECT_EQ(client.requests_performed(), 4);
  // Persistent 5xx: max_attempts requests, then Unavailable.
  HttpTestServer down([](const HttpRequest&) -> HttpResponse { return {503, {}, ""}; });
  RegistryClient client2(FastRetries(down.host_port()));
  SKIFF_ASSERT_OK_AND_ASSIGN(Reference d, ParseReference(down.host_port() + "/app:v1"));
  EXPECT_THAT(client2.GetManifest(d, "v1"), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(down.requests(), 3);
}

TEST_F(BearerTest, ManifestNotMatchingItsDigestIsDataLoss) {
  HttpTestServer server([&](const HttpRequest& r) -> HttpResponse {
    HttpResponse resp = image_.Serve(r.target);
    resp.headers["Docker-Content-Digest"] = Sha256Digest("something else");
    return resp;
  });
  RegistryClient client(FastRetries(server.host_port()));
  SKIFF_ASSERT_OK_AND_ASSIGN(Reference ref, ParseReference(server.host_port() + "/app:v1"));
  EXPECT_THAT(client.GetManifest(ref, "v1"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("Docker-Content-Digest")));
}

TestLayer OneFileLayer(const std::string& content) {
  TarBuilder t;
  t.File("f", content);
  std::string tar = t.Finish();
  return TestLayer{tar, tar, "application/vnd.oci.image.layer.v1.tar"};
}

TEST(RegistryBasicAuthTest, HtpasswdRegistryNeedsTheRightCredentials) {
  TempDir dir;
  SKIFF_ASSERT_OK_AND_ASSIGN(std::string line, testing::HtpasswdLine("alice", "wonderland"));
  const std::string htpasswd = dir.path() + "/htpasswd";
  std::ofstream(htpasswd) << line << "\n";
  testing::RegistryOptions ro;
  ro.htpasswd_file = htpasswd;
  SKIFF_ASSERT_OK_AND_ASSIGN(auto registry, LocalRegistry::Start(ro));
  PushAuth auth;
  auth.username = "alice";
  auth.password = "wonderland";
  SKIFF_ASSERT_OK(
      PushImage(registry->base_url(), "private", "v1", {OneFileLayer("secret")}, "{}", auth));
  auto open = [&](const std::string& sub, const std::string& user, const std::string& pass) {
    StoreOptions o;
    o.root = dir.path() + "/" + sub;
    o.insecure_registries = {registry->host_port()};
    o.initial_backoff_ms = 10;
    if (!user.empty()) o.credentials[registry->host_port()] = {user, pass};
    return ImageStore::Open(o);
  };
  const std::string ref = registry->host_port() + "/private:v1";
  SKIFF_ASSERT_OK_AND_ASSIGN(auto good, open("good", "alice", "wonderland"));
  SKIFF_ASSERT_OK_AND_ASSIGN(Image img, good->Pull(ref, nullptr));
  std::ifstream f(img.layer_dirs[0] + "/f");
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(f), {}), "secret");
  SKIFF_ASSERT_OK_AND_ASSIGN(auto wrong, open("wrong", "alice", "nope"));
  EXPECT_THAT(wrong->Pull(ref, nullptr),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr(ref)));
  SKIFF_ASSERT_OK_AND_ASSIGN(auto anon, open("anon", "", ""));
  EXPECT_THAT(anon->Pull(ref, nullptr), StatusIs(absl::StatusCode::kPermissionDenied));
}

TEST(RegistryTlsTest, PullsWithTheConfiguredCaAndFailsWithout) {
  TempDir dir;
  SKIFF_ASSERT_OK_AND_ASSIGN(testing::TestCa ca, testing::MakeTestCa(dir.path()));
  testing::RegistryOptions ro;
  ro.tls_cert = ca.server_cert;
  ro.tls_key = ca.server_key;
  SKIFF_ASSERT_OK_AND_ASSIGN(auto registry, LocalRegistry::Start(ro));
  PushAuth auth;
  auth.ca_file = ca.ca_cert;
  SKIFF_ASSERT_OK(
      PushImage(registry->base_url(), "tls", "v1", {OneFileLayer("over tls")}, "{}", auth));
  const std::string ref = registry->host_port() + "/tls:v1";
  StoreOptions o;
  o.root = dir.path() + "/with-ca";
  o.ca_file = ca.ca_cert;
  o.initial_backoff_ms = 10;
  SKIFF_ASSERT_OK_AND_ASSIGN(auto store, ImageStore::Open(o));
  SKIFF_ASSERT_OK_AND_ASSIGN(Image img, store->Pull(ref, nullptr));
  std::ifstream f(img.layer_dirs[0] + "/f");
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(f), {}), "over tls");

  // System store only: the private CA is unknown → refused, without retries.
  StoreOptions no_ca;
  no_ca.root = dir.path() + "/no-ca";
  no_ca.initial_backoff_ms = 1000;
  SKIFF_ASSERT_OK_AND_ASSIGN(auto untrusting, ImageStore::Open(no_ca));
  auto start = std::chrono::steady_clock::now();
  EXPECT_THAT(untrusting->Pull(ref, nullptr),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("certificate")));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(900));
  // And plain HTTP to a TLS registry is not silently attempted either.
  StoreOptions plain = no_ca;
  plain.root = dir.path() + "/plain";
  plain.insecure_registries = {registry->host_port()};
  plain.max_attempts = 1;
  SKIFF_ASSERT_OK_AND_ASSIGN(auto plain_store, ImageStore::Open(plain));
  EXPECT_FALSE(plain_store->Pull(ref, nullptr).ok());
}

}  // namespace
}  // namespace skiff::images
