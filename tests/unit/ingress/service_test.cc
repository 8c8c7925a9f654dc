// Service validation (defaults, every error names its field) and the on-disk store.

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "agent/ingress/activator.h"
#include "agent/ingress/service_store.h"
#include "agent/ingress/service_validation.h"
#include "tests/support/status_matchers.h"

namespace skiff::ingress {
namespace {

using ::skiff::testing::StatusIs;
using ::testing::HasSubstr;

v1::Service Valid(const std::string& name = "web") {
  v1::Service s;
  s.set_name(name);
  s.mutable_template_()->set_image("localhost:5000/hello:latest");
  s.mutable_template_()->set_memory_bytes(64 << 20);
  return s;
}

TEST(ServiceValidationTest, DefaultsAreFilledIn) {
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Service s, NormalizeService(Valid()));
  EXPECT_EQ(s.max_instances(), 10u);
  EXPECT_EQ(s.min_instances(), 0u);
  EXPECT_EQ(s.max_queue(), 100u);
  EXPECT_EQ(FromProto(s.idle_timeout()), absl::Seconds(60));
  EXPECT_EQ(FromProto(s.queue_timeout()), absl::Seconds(30));
  EXPECT_EQ(s.template_().kind(), v1::SERVICE);
  EXPECT_EQ(s.template_().concurrency(), 80u);
  EXPECT_EQ(s.template_().port(), 8080u);
  EXPECT_EQ(s.template_().labels().at(kServiceLabel), "web");
}

TEST(ServiceValidationTest, ExplicitValuesAreKept) {
  v1::Service in = Valid("api-2");
  in.set_min_instances(2);
  in.set_max_instances(5);
  in.set_max_queue(7);
  *in.mutable_idle_timeout() = ToProto(absl::Seconds(3));
  *in.mutable_queue_timeout() = ToProto(absl::Milliseconds(250));
  (*in.mutable_template_()->mutable_labels())[kServiceLabel] = "api-2";
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Service s, NormalizeService(in));
  EXPECT_EQ(s.min_instances(), 2u);
  EXPECT_EQ(s.max_instances(), 5u);
  EXPECT_EQ(s.max_queue(), 7u);
  EXPECT_EQ(FromProto(s.idle_timeout()), absl::Seconds(3));
  EXPECT_EQ(FromProto(s.queue_timeout()), absl::Milliseconds(250));
}

TEST(ServiceValidationTest, ErrorsNameTheField) {
  struct Case {
    std::string what;
    std::function<void(v1::Service*)> mutate;
    std::string field;
  };
  const std::vector<Case> cases = {
      {"empty name", [](v1::Service* s) { s->set_name(""); }, "service.name: required"},
      {"upper case", [](v1::Service* s) { s->set_name("Web"); }, "service.name: \"Web\""},
      {"leading dash", [](v1::Service* s) { s->set_name("-web"); }, "service.name:"},
      {"too long", [](v1::Service* s) { s->set_name(std::string(54, 'a')); }, "service.name:"},
      {"dot", [](v1::Service* s) { s->set_name("a.b"); }, "service.name:"},
      {"no template", [](v1::Service* s) { s->clear_template_(); }, "service.template: required"},
      {"job", [](v1::Service* s) { s->mutable_template_()->set_kind(v1::JOB); },
       "service.template.kind: must be SERVICE"},
      {"label",
       [](v1::Service* s) { (*s->mutable_template_()->mutable_labels())[kServiceLabel] = "other"; },
       "service.template.labels[\"skiff.service\"]: \"other\" differs"},
      {"memory", [](v1::Service* s) { s->mutable_template_()->set_memory_bytes(0); },
       "service.template.memory_bytes:"},
      {"image", [](v1::Service* s) { s->mutable_template_()->clear_image(); },
       "service.template.image: required"},
      {"concurrency", [](v1::Service* s) { s->mutable_template_()->set_concurrency(5000); },
       "service.template.concurrency:"},
      {"max > 1000", [](v1::Service* s) { s->set_max_instances(1001); },
       "service.max_instances: 1001 out of range"},
      {"min > max",
       [](v1::Service* s) {
         s->set_min_instances(4);
         s->set_max_instances(3);
       },
       "service.min_instances: 4 is above max_instances 3"},
      {"idle too short",
       [](v1::Service* s) { *s->mutable_idle_timeout() = ToProto(absl::Milliseconds(10)); },
       "service.idle_timeout: 10ms out of range 1s..24h"},
      {"idle too long",
       [](v1::Service* s) { *s->mutable_idle_timeout() = ToProto(absl::Hours(25)); },
       "service.idle_timeout:"},
      {"idle negative", [](v1::Service* s) { s->mutable_idle_timeout()->set_seconds(-5); },
       "service.idle_timeout: must not be negative"},
      {"max_queue", [](v1::Service* s) { s->set_max_queue(100001); },
       "service.max_queue: 100001 out of range"},
      {"queue past request timeout",
       [](v1::Service* s) {
         *s->mutable_template_()->mutable_request_timeout() = ToProto(absl::Seconds(5));
         *s->mutable_queue_timeout() = ToProto(absl::Seconds(6));
       },
       "service.queue_timeout: 6s out of range 1ms..5s"},
      {"queue zero",
       [](v1::Service* s) { *s->mutable_queue_timeout() = ToProto(absl::ZeroDuration()); },
       "service.queue_timeout: 0 out of range"},
  };
  for (const Case& c : cases) {
    v1::Service s = Valid();
    c.mutate(&s);
    EXPECT_THAT(NormalizeService(s),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.field)))
        << c.what;
  }
}

TEST(ServiceValidationTest, QueueTimeoutDefaultsToAtMostTheRequestTimeout) {
  v1::Service in = Valid();
  *in.mutable_template_()->mutable_request_timeout() = ToProto(absl::Seconds(5));
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Service s, NormalizeService(in));
  EXPECT_EQ(FromProto(s.queue_timeout()), absl::Seconds(5));
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/skiff-service-test-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(ServiceStoreTest, SaveLoadRemove) {
  TempDir tmp;
  SKIFF_ASSERT_OK_AND_ASSIGN(ServiceStore store, ServiceStore::Open(tmp.path() + "/services"));
  struct stat st;
  ASSERT_EQ(stat((tmp.path() + "/services").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Service b, NormalizeService(Valid("bbb")));
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Service a, NormalizeService(Valid("aaa")));
  SKIFF_ASSERT_OK(store.Save(b));
  SKIFF_ASSERT_OK(store.Save(a));
  // No temp file is left behind.
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(store.dir())) {
    EXPECT_EQ(e.path().extension(), ".pb") << e.path();
    ++files;
  }
  EXPECT_EQ(files, 2);
  SKIFF_ASSERT_OK_AND_ASSIGN(ServiceStore::Loaded loaded, store.Load());
  ASSERT_EQ(loaded.services.size(), 2u);
  EXPECT_EQ(loaded.services[0].SerializeAsString(), a.SerializeAsString());
  EXPECT_EQ(loaded.services[1].SerializeAsString(), b.SerializeAsString());
  EXPECT_TRUE(loaded.skipped.empty());
  SKIFF_ASSERT_OK(store.Remove("aaa"));
  SKIFF_ASSERT_OK(store.Remove("aaa"));  // NotFound is OK
  SKIFF_ASSERT_OK_AND_ASSIGN(loaded, store.Load());
  ASSERT_EQ(loaded.services.size(), 1u);
  EXPECT_EQ(loaded.services[0].name(), "bbb");
  EXPECT_THAT(store.Remove("../etc"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ServiceStoreTest, CorruptMismatchedAndInvalidFilesAreSkippedWithTheirPath) {
  TempDir tmp;
  SKIFF_ASSERT_OK_AND_ASSIGN(ServiceStore store, ServiceStore::Open(tmp.path() + "/services"));
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Service good, NormalizeService(Valid("good")));
  SKIFF_ASSERT_OK(store.Save(good));
  { std::ofstream(store.PathOf("corrupt")) << "\xff\xff\xff not a protobuf"; }
  // A valid message under another name.
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Service other, NormalizeService(Valid("other")));
  { std::ofstream(store.PathOf("renamed")) << other.SerializeAsString(); }
  // Parses, but does not validate (max_instances > 1000).
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::Service invalid, NormalizeService(Valid("invalid")));
  invalid.set_max_instances(5000);
  { std::ofstream(store.PathOf("invalid")) << invalid.SerializeAsString(); }
  SKIFF_ASSERT_OK_AND_ASSIGN(ServiceStore::Loaded loaded, store.Load());
  ASSERT_EQ(loaded.services.size(), 1u);
  EXPECT_EQ(loaded.services[0].name(), "good");
  ASSERT_EQ(loaded.skipped.size(), 3u);
  EXPECT_THAT(loaded.skipped[0],
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr(store.PathOf("corrupt"))));
  EXPECT_THAT(loaded.skipped[1],
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(store.PathOf("invalid") + ": service.max_instances")));
  EXPECT_THAT(loaded.skipped[2], StatusIs(absl::StatusCode::kDataLoss,
                                          HasSubstr("holds service \"other\", not \"renamed\"")));
}

TEST(ServiceStoreTest, OpenRefusesAFile) {
  TempDir tmp;
  { std::ofstream(tmp.path() + "/services") << "x"; }
  EXPECT_THAT(ServiceStore::Open(tmp.path() + "/services"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not a directory")));
}

}  // namespace
}  // namespace skiff::ingress
