// The default termination grace (10 s): an instance ignoring SIGTERM is SIGKILLed at
// 10 s ± 200 ms. Labelled slow.

#include <signal.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/shim/shim_fixture.h"
#include "tests/support/status_matchers.h"

namespace skiff::shim {
namespace {

TEST_F(ShimTest, IgnorerIsKilledAtTheDefaultTenSecondGrace) {
  v1::shim::ShimConfig config =
      Config({"sh", "-c",
              "trap '' TERM; sleep 1000 & (trap '' TERM; while true; do sleep 1; done) & "
              "echo ready; while true; do sleep 0.05; done"},
             true);
  config.clear_termination_grace_ms();
  config.set_termination_grace_ms(10000);  // what skiffd sends for an unset grace
  SKIFF_ASSERT_OK(LaunchShim(ShimBinary(), config));
  ASSERT_TRUE(WaitForConsole("ready", absl::Seconds(10)));
  SKIFF_ASSERT_OK_AND_ASSIGN(std::unique_ptr<ShimClient> client,
                             ShimClient::Connect(state_.path()));
  SKIFF_ASSERT_OK(client->Stop(std::nullopt));  // the config's grace
  SKIFF_ASSERT_OK_AND_ASSIGN(v1::shim::ShimStatus st, WaitExited(absl::Seconds(20)));
  int64_t took_ms = (st.exited_unix_ns() - st.stopping_unix_ns()) / 1000000;
  EXPECT_GE(took_ms, 9800);
  EXPECT_LE(took_ms, 10200);
  EXPECT_EQ(st.exit_reason(), kKilled);
  EXPECT_EQ(st.exit_signal(), SIGKILL);
  EXPECT_TRUE(testbed::ProcessesWithMarker(names_.marker).empty());
}

}  // namespace
}  // namespace skiff::shim
