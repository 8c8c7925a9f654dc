// CpuLatencyRequest: the value it writes, its argument checks and errors, and, against the
// kernel's real /dev/cpu_dma_latency, that a held request is in force and that dropping it
// (closing the fd) restores what was there before.

#include "agent/ingress/cpu_latency.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <string>

#include "tests/support/status_matchers.h"

namespace skiff::ingress {
namespace {

using ::skiff::testing::StatusIs;
using ::testing::HasSubstr;

class TempFile {
 public:
  TempFile() {
    char tmpl[] = "/tmp/skiff-cpu-latency-XXXXXX";
    const int fd = mkostemp(tmpl, O_CLOEXEC);
    if (fd >= 0) close(fd);
    path_ = tmpl;
  }
  ~TempFile() { unlink(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(CpuLatencyRequestTest, WritesTheValueAsTheKernelsBinaryS32) {
  TempFile f;
  auto held = CpuLatencyRequest::Hold(37, f.path());
  ASSERT_TRUE(held.ok()) << held.status();
  EXPECT_EQ(held->max_us(), 37);
  auto back = CpuLatencyRequest::Current(f.path());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, 37);
}

TEST(CpuLatencyRequestTest, RejectsValuesOutsideTheKernelsRange) {
  TempFile f;
  EXPECT_THAT(CpuLatencyRequest::Hold(-1, f.path()).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("-1 us is not in 0..")));
  EXPECT_THAT(CpuLatencyRequest::Hold(CpuLatencyRequest::kMaxUs + 1, f.path()).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("2000000001 us")));
}

TEST(CpuLatencyRequestTest, AMissingDeviceIsAnErrorNamingThePath) {
  EXPECT_THAT(CpuLatencyRequest::Hold(0, "/nonexistent/cpu_dma_latency").status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/nonexistent/cpu_dma_latency")));
  EXPECT_THAT(CpuLatencyRequest::Current("/nonexistent/cpu_dma_latency").status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/nonexistent/cpu_dma_latency")));
}

// The kernel keeps the smallest of all held requests in force and drops one when its fd is
// closed (also when the holder dies), so nothing outlives this test even if it fails.
TEST(CpuLatencyRequestTest, TheKernelKeepsTheSmallestHeldRequestUntilItIsDropped) {
  auto before = CpuLatencyRequest::Current();
  ASSERT_TRUE(before.ok()) << before.status();
  {
    auto loose = CpuLatencyRequest::Hold(50);
    ASSERT_TRUE(loose.ok()) << loose.status();
    EXPECT_EQ(*CpuLatencyRequest::Current(), std::min(*before, 50));
    std::optional<CpuLatencyRequest> tight;
    {
      auto t = CpuLatencyRequest::Hold(0);
      ASSERT_TRUE(t.ok()) << t.status();
      tight.emplace(std::move(*t));  // the moved-from request drops nothing
    }
    EXPECT_EQ(*CpuLatencyRequest::Current(), 0);
    tight.reset();
    EXPECT_EQ(*CpuLatencyRequest::Current(), std::min(*before, 50));
  }
  EXPECT_EQ(*CpuLatencyRequest::Current(), *before);
}

}  // namespace
}  // namespace skiff::ingress
