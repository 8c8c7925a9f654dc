// skiffctl's argument cursor and quantity parsing.

#include "agent/skiffctl/args.h"
#include "agent/skiffctl/quantity.h"
#include "tests/support/status_matchers.h"

namespace skiff::skiffctl {
namespace {

using ::skiff::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(QuantityTest, Memory) {
  EXPECT_EQ(*ParseMemory("memory", "256Mi"), 256ull << 20);
  EXPECT_EQ(*ParseMemory("memory", "1Gi"), 1ull << 30);
  EXPECT_EQ(*ParseMemory("memory", "512M"), 512000000ull);
  EXPECT_EQ(*ParseMemory("memory", "4k"), 4000ull);
  EXPECT_EQ(*ParseMemory("memory", "1048576"), 1048576ull);
  EXPECT_EQ(*ParseMemory("memory", "0"), 0ull);
  for (const std::string bad : {"", "Mi", "1.5Gi", "-1", "12Qi", "lots", "99999999999Ti"}) {
    EXPECT_THAT(ParseMemory("memory", bad),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--memory: ")))
        << bad;
  }
}

TEST(QuantityTest, Cpu) {
  EXPECT_EQ(*ParseCpu("cpu", "500m"), 500u);
  EXPECT_EQ(*ParseCpu("cpu", "2"), 2000u);
  EXPECT_EQ(*ParseCpu("cpu", "1.5"), 1500u);
  EXPECT_EQ(*ParseCpu("cpu", "0.25"), 250u);
  for (const std::string bad : {"", "m", "-1", "abc", "1.5m", "nan", "inf"}) {
    EXPECT_THAT(ParseCpu("cpu", bad), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
}

TEST(QuantityTest, Duration) {
  EXPECT_EQ(*ParseDurationFlag("grace", "10s"), absl::Seconds(10));
  EXPECT_EQ(*ParseDurationFlag("grace", "500ms"), absl::Milliseconds(500));
  EXPECT_EQ(*ParseDurationFlag("grace", "1m30s"), absl::Seconds(90));
  EXPECT_EQ(*ParseDurationFlag("grace", "0"), absl::ZeroDuration());
  for (const std::string bad : {"", "10", "-1s", "soon", "inf"}) {
    EXPECT_THAT(ParseDurationFlag("grace", bad),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--grace: ")))
        << bad;
  }
  EXPECT_EQ(HumanBytes(512), "512 B");
  EXPECT_EQ(HumanBytes(1536), "1.5 KiB");
  EXPECT_EQ(HumanBytes(256ull << 20), "256.0 MiB");
}

TEST(ArgsTest, OptionsSwitchesPositionalsAndDashDash) {
  Args args({"img", "--port", "80", "-e", "A=1", "--env=B=2", "-f", "--wait", "--", "-x", "y"});
  EXPECT_TRUE(args.Switch("--wait"));
  EXPECT_TRUE(args.Switch("--force", "-f"));
  EXPECT_FALSE(args.Switch("--missing"));
  EXPECT_EQ(**args.Value("--port"), "80");
  EXPECT_THAT(*args.Values("--env", "-e"), ElementsAre("A=1", "B=2"));
  EXPECT_FALSE(args.Value("--id")->has_value());
  EXPECT_THAT(*args.Positionals(), ElementsAre("img"));
  EXPECT_THAT(args.AfterDashDash(), ElementsAre("-x", "y"));
}

TEST(ArgsTest, Errors) {
  Args missing({"--port"});
  EXPECT_THAT(missing.Value("--port"), StatusIs(absl::StatusCode::kInvalidArgument));
  Args unknown({"img", "--bogus"});
  EXPECT_THAT(unknown.Positionals(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown option --bogus")));
  // Options after "--" belong to the instance, not to skiffctl.
  Args after({"--", "--port", "1"});
  EXPECT_FALSE(after.Value("--port")->has_value());
  EXPECT_THAT(after.AfterDashDash(), ElementsAre("--port", "1"));
}

}  // namespace
}  // namespace skiff::skiffctl
