#include "agent/instances/spec_validation.h"

#include <functional>

#include "agent/instances/instance_id.h"
#include "agent/instances/spec_defaults.h"
#include "tests/support/status_matchers.h"

namespace skiff::agent {
namespace {

using ::skiff::testing::IsOk;
using ::skiff::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::StartsWith;

v1::InstanceSpec GoodSpec() {
  v1::InstanceSpec spec;
  spec.set_image("127.0.0.1:5000/hello:latest");
  spec.set_memory_bytes(256 << 20);
  ApplySpecDefaults(&spec);
  return spec;
}

TEST(SpecDefaultsTest, FillsEveryDocumentedDefault) {
  v1::InstanceSpec spec;
  ApplySpecDefaults(&spec);
  EXPECT_EQ(spec.port(), 8080u);
  EXPECT_EQ(spec.vcpus_milli(), 1000u);
  EXPECT_EQ(spec.termination_grace().seconds(), 10);
  EXPECT_EQ(spec.startup_timeout().seconds(), 240);
  EXPECT_EQ(spec.concurrency(), 80u);
  EXPECT_EQ(spec.request_timeout().seconds(), 300);
  EXPECT_EQ(spec.generation(), v1::GEN1);
  EXPECT_EQ(spec.kind(), v1::SERVICE);
  EXPECT_EQ(spec.cpu_allocation(), v1::REQUEST);
  EXPECT_EQ(spec.memory_bytes(), 0u);  // required, no default
}

TEST(SpecDefaultsTest, KeepsExplicitValuesIncludingZeroGrace) {
  v1::InstanceSpec spec;
  spec.set_port(9000);
  spec.set_vcpus_milli(500);
  spec.mutable_termination_grace()->set_seconds(0);
  spec.set_concurrency(1);
  spec.set_kind(v1::JOB);
  ApplySpecDefaults(&spec);
  EXPECT_EQ(spec.port(), 9000u);
  EXPECT_EQ(spec.vcpus_milli(), 500u);
  EXPECT_TRUE(spec.has_termination_grace());
  EXPECT_EQ(spec.termination_grace().seconds(), 0);
  EXPECT_EQ(spec.concurrency(), 1u);
  EXPECT_EQ(spec.kind(), v1::JOB);
}

TEST(SpecValidationTest, GoodSpecPasses) { EXPECT_THAT(ValidateSpec(GoodSpec()), IsOk()); }

struct BadCase {
  const char* name;
  std::function<void(v1::InstanceSpec*)> mutate;
  const char* message_prefix;
};

TEST(SpecValidationTest, EveryBadFieldIsNamed) {
  const std::vector<BadCase> cases = {
      {"no image", [](auto* s) { s->clear_image(); }, "spec.image: required"},
      {"image with space", [](auto* s) { s->set_image("a b"); }, "spec.image: "},
      {"zero memory", [](auto* s) { s->set_memory_bytes(0); }, "spec.memory_bytes: must be > 0"},
      {"tiny memory", [](auto* s) { s->set_memory_bytes(4096); }, "spec.memory_bytes: 4096 below"},
      {"port too big", [](auto* s) { s->set_port(70000); },
       "spec.port: 70000 out of range 1..65535"},
      {"vcpus too small", [](auto* s) { s->set_vcpus_milli(5); }, "spec.vcpus_milli: 5 below"},
      {"concurrency 0", [](auto* s) { s->set_concurrency(0); },
       "spec.concurrency: 0 out of range 1..1000"},
      {"concurrency 1001", [](auto* s) { s->set_concurrency(1001); },
       "spec.concurrency: 1001 out of range 1..1000"},
      {"grace 3601", [](auto* s) { s->mutable_termination_grace()->set_seconds(3601); },
       "spec.termination_grace: 3601s out of range 0s..3600s"},
      {"grace negative", [](auto* s) { s->mutable_termination_grace()->set_seconds(-1); },
       "spec.termination_grace: must not be negative"},
      {"grace malformed",
       [](auto* s) {
         s->mutable_termination_grace()->set_seconds(1);
         s->mutable_termination_grace()->set_nanos(-5);
       },
       "spec.termination_grace: malformed"},
      {"startup 0", [](auto* s) { s->mutable_startup_timeout()->set_seconds(0); },
       "spec.startup_timeout: must be > 0"},
      {"request timeout 3601", [](auto* s) { s->mutable_request_timeout()->set_seconds(3601); },
       "spec.request_timeout: 3601s out of range"},
      {"env key with =", [](auto* s) { (*s->mutable_env())["A=B"] = "x"; }, "spec.env[\"A=B\"]"},
      {"env key empty", [](auto* s) { (*s->mutable_env())[""] = "x"; }, "spec.env: empty key"},
      {"env key space", [](auto* s) { (*s->mutable_env())["A B"] = "x"; }, "spec.env[\"A B\"]"},
      {"env PORT reserved", [](auto* s) { (*s->mutable_env())["PORT"] = "1"; },
       "spec.env[\"PORT\"]: is reserved"},
      {"env value NUL", [](auto* s) { (*s->mutable_env())["A"] = std::string("x\0y", 3); },
       "spec.env[\"A\"]: contains a NUL"},
      {"relative workdir", [](auto* s) { s->set_working_dir("app"); },
       "spec.working_dir: \"app\" is not absolute"},
      {"empty command[0]", [](auto* s) { s->add_command(""); }, "spec.command[0]"},
      {"NUL in args", [](auto* s) { s->add_args(std::string("a\0", 2)); }, "spec.args[0]"},
      {"bad generation", [](auto* s) { s->set_generation(static_cast<v1::Generation>(7)); },
       "spec.generation: unknown value 7"},
      {"bad kind", [](auto* s) { s->set_kind(static_cast<v1::InstanceKind>(9)); },
       "spec.kind: unknown value 9"},
      {"task index on service", [](auto* s) { s->set_task_index(1); },
       "spec.task_index: only valid for kind JOB"},
      {"task index >= count",
       [](auto* s) {
         s->set_kind(v1::JOB);
         s->set_task_index(3);
         s->set_task_count(3);
       },
       "spec.task_index: 3 must be < spec.task_count 3"},
      {"bad label key", [](auto* s) { (*s->mutable_labels())["-x"] = "v"; }, "spec.labels[\"-x\"]"},
      {"bad label value", [](auto* s) { (*s->mutable_labels())["k"] = "a,b"; },
       "spec.labels[\"k\"]: value"},
      {"bad user", [](auto* s) { s->set_user("a:b:c"); }, "spec.user: "},
      {"bad cpu allocation",
       [](auto* s) { s->set_cpu_allocation(static_cast<v1::CpuAllocation>(5)); },
       "spec.cpu_allocation: unknown value 5"},
  };
  for (const BadCase& c : cases) {
    v1::InstanceSpec spec = GoodSpec();
    c.mutate(&spec);
    EXPECT_THAT(ValidateSpec(spec),
                StatusIs(absl::StatusCode::kInvalidArgument, StartsWith(c.message_prefix)))
        << c.name;
  }
}

TEST(SpecValidationTest, CapacityIsResourceExhaustedNamingTheField) {
  v1::InstanceSpec spec = GoodSpec();
  spec.set_vcpus_milli(4000);
  EXPECT_THAT(CheckCapacity(spec, {2000, 1ull << 30}),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       StartsWith("spec.vcpus_milli: 4000 exceeds the node's free capacity")));
  spec.set_vcpus_milli(1000);
  spec.set_memory_bytes(2ull << 30);
  EXPECT_THAT(CheckCapacity(spec, {2000, 1ull << 30}),
              StatusIs(absl::StatusCode::kResourceExhausted, StartsWith("spec.memory_bytes: ")));
  spec.set_memory_bytes(1ull << 30);
  EXPECT_THAT(CheckCapacity(spec, {1000, 1ull << 30}), IsOk());
}

TEST(InstanceIdTest, AcceptsAndRejects) {
  EXPECT_THAT(ValidateInstanceId("a"), IsOk());
  EXPECT_THAT(ValidateInstanceId("hello-1"), IsOk());
  EXPECT_THAT(ValidateInstanceId(std::string(63, 'a')), IsOk());
  for (const std::string bad : {"", "-a", "A", "a_b", "a.b", "a/b", "../x", "é"}) {
    EXPECT_THAT(ValidateInstanceId(bad),
                StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("instance_id: ")))
        << bad;
  }
  EXPECT_THAT(ValidateInstanceId(std::string(64, 'a')),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("longer than 63")));
  const std::string gen = GenerateInstanceId();
  EXPECT_THAT(ValidateInstanceId(gen), IsOk());
  EXPECT_NE(gen, GenerateInstanceId());
}

}  // namespace
}  // namespace skiff::agent
