#include <gtest/gtest.h>

#include <chrono>

#include "agent/ingress/proxy_busy_poll.h"

namespace skiff::ingress::proxy {
namespace {

using Clock = BusyPollGovernor::Clock;
using std::chrono::microseconds;
using std::chrono::milliseconds;

constexpr Clock::duration kWindow = microseconds(200);
const Clock::time_point kT0 = Clock::time_point() + std::chrono::hours(1);

TEST(BusyPollGovernorTest, PollsWithinTheWindowAfterEventsThenBlocks) {
  BusyPollGovernor g(kWindow, kT0);
  EXPECT_TRUE(g.ShouldPoll(kT0));
  EXPECT_TRUE(g.ShouldPoll(kT0 + microseconds(199)));
  EXPECT_FALSE(g.ShouldPoll(kT0 + microseconds(200)));
  // Events handled later open a new window from then.
  g.Handled(kT0 + milliseconds(3));
  EXPECT_TRUE(g.ShouldPoll(kT0 + milliseconds(3) + microseconds(10)));
  EXPECT_FALSE(g.ShouldPoll(kT0 + milliseconds(3) + kWindow));
}

TEST(BusyPollGovernorTest, AYieldThatReturnsPromptlyKeepsPolling) {
  BusyPollGovernor g(kWindow, kT0);
  g.Yielded(kT0 + microseconds(1), kT0 + microseconds(50));  // back after 49 µs
  EXPECT_TRUE(g.ShouldPoll(kT0 + microseconds(50)));
  g.Handled(kT0 + microseconds(260));
  EXPECT_TRUE(g.ShouldPoll(kT0 + microseconds(261)));
}

TEST(BusyPollGovernorTest, AYieldThatReturnsLateStopsPollingForTheBackoff) {
  BusyPollGovernor g(kWindow, kT0);
  const Clock::time_point back = kT0 + microseconds(1) + BusyPollGovernor::kYieldedAway;
  g.Yielded(kT0 + microseconds(1), back);
  // Inside the window, yet other threads wanted the CPU: block between events.
  EXPECT_FALSE(g.ShouldPoll(back));
  // Events keep coming during the back-off: still no polling after them.
  g.Handled(back + milliseconds(5));
  EXPECT_FALSE(g.ShouldPoll(back + milliseconds(5) + microseconds(1)));
  g.Handled(back + BusyPollGovernor::kBackoff - microseconds(10));
  EXPECT_FALSE(g.ShouldPoll(back + BusyPollGovernor::kBackoff - microseconds(1)));
  // Once the back-off is over, events open windows again.
  EXPECT_TRUE(g.ShouldPoll(back + BusyPollGovernor::kBackoff));
  g.Handled(back + BusyPollGovernor::kBackoff + milliseconds(1));
  EXPECT_TRUE(g.ShouldPoll(back + BusyPollGovernor::kBackoff + milliseconds(1)));
}

TEST(BusyPollGovernorTest, ALateYieldDuringTheBackoffExtendsIt) {
  BusyPollGovernor g(kWindow, kT0);
  const Clock::time_point back1 = kT0 + milliseconds(1);
  g.Yielded(kT0, back1);  // 1 ms late: no polling until back1 + kBackoff
  const Clock::time_point back2 = back1 + milliseconds(15);
  g.Yielded(back2 - microseconds(100), back2);  // late again before that: until back2 + kBackoff
  g.Handled(back1 + BusyPollGovernor::kBackoff);
  EXPECT_FALSE(g.ShouldPoll(back1 + BusyPollGovernor::kBackoff));
  g.Handled(back2 + BusyPollGovernor::kBackoff);
  EXPECT_TRUE(g.ShouldPoll(back2 + BusyPollGovernor::kBackoff));
}

}  // namespace
}  // namespace skiff::ingress::proxy
