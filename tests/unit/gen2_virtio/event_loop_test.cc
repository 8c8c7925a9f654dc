// The device thread's epoll loop: callbacks by token, disarm/re-arm, unregister (also from a
// callback), and Stop from another thread.

#include "sandbox/gen2/devices/event_loop.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "tests/support/status_matchers.h"

namespace skiff::gen2 {
namespace {

using ::skiff::testing::StatusIs;

class EventLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int p[2];
    ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
    r_.Reset(p[0]);
    w_.Reset(p[1]);
    SKIFF_ASSERT_OK_AND_ASSIGN(loop_, EventLoop::Create());
  }
  UniqueFd r_, w_;
  std::unique_ptr<EventLoop> loop_;
};

TEST_F(EventLoopTest, CallbackRunsWithItsEvents) {
  uint32_t seen = 0;
  int calls = 0;
  SKIFF_ASSERT_OK_AND_ASSIGN(EventLoop::Token t,
                             loop_->Register(r_.get(), EPOLLIN, [&](uint32_t e) {
                               seen = e;
                               ++calls;
                             }));
  EXPECT_NE(t, 0u);
  EXPECT_EQ(loop_->RunOnce(0).value_or(-1), 0) << "nothing readable yet";
  ASSERT_EQ(write(w_.get(), "x", 1), 1);
  EXPECT_EQ(loop_->RunOnce(1000).value_or(-1), 1);
  EXPECT_EQ(calls, 1);
  EXPECT_NE(seen & EPOLLIN, 0u);
}

TEST_F(EventLoopTest, DisarmAndRearm) {
  int calls = 0;
  SKIFF_ASSERT_OK_AND_ASSIGN(EventLoop::Token t,
                             loop_->Register(r_.get(), 0, [&](uint32_t) { ++calls; }));
  ASSERT_EQ(write(w_.get(), "x", 1), 1);
  EXPECT_EQ(loop_->RunOnce(20).value_or(-1), 0) << "registered disarmed";
  SKIFF_ASSERT_OK(loop_->Modify(t, EPOLLIN));
  EXPECT_EQ(loop_->RunOnce(1000).value_or(-1), 1);
  SKIFF_ASSERT_OK(loop_->Modify(t, 0));
  w_.Reset();  // even a hang-up does not wake a disarmed fd
  EXPECT_EQ(loop_->RunOnce(20).value_or(-1), 0);
  EXPECT_EQ(calls, 1);
}

TEST_F(EventLoopTest, UnregisterFromTheCallback) {
  int calls = 0;
  EventLoop::Token t = 0;
  SKIFF_ASSERT_OK_AND_ASSIGN(t, loop_->Register(r_.get(), EPOLLIN, [&](uint32_t) {
    ++calls;
    EXPECT_TRUE(loop_->Unregister(t).ok());
  }));
  ASSERT_EQ(write(w_.get(), "x", 1), 1);
  EXPECT_EQ(loop_->RunOnce(1000).value_or(-1), 1);
  EXPECT_EQ(loop_->RunOnce(20).value_or(-1), 0);
  EXPECT_EQ(calls, 1);
  EXPECT_THAT(loop_->Unregister(t), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(loop_->Modify(t, EPOLLIN), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(EventLoopTest, RegisterBadFdFails) {
  EXPECT_FALSE(loop_->Register(-1, EPOLLIN, [](uint32_t) {}).ok());
}

TEST_F(EventLoopTest, StopFromAnotherThread) {
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    loop_->Stop();
  });
  SKIFF_EXPECT_OK(loop_->Run());
  t.join();
  // A Stop before Run makes Run return at once.
  loop_->Stop();
  SKIFF_EXPECT_OK(loop_->Run());
}

}  // namespace
}  // namespace skiff::gen2
