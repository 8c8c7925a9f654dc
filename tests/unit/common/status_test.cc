#include "sandbox/common/status.h"

#include <fcntl.h>

#include "sandbox/common/unique_fd.h"
#include "tests/support/status_matchers.h"

namespace skiff {
namespace {

using ::skiff::testing::StatusIs;
using ::testing::HasSubstr;

absl::StatusOr<int> Half(int x) {
  if (x % 2) return absl::InvalidArgumentError("odd");
  return x / 2;
}

absl::Status Quarter(int x, int* out) {
  SKIFF_ASSIGN_OR_RETURN(int h, Half(x));
  SKIFF_ASSIGN_OR_RETURN(*out, Half(h));
  return absl::OkStatus();
}

TEST(StatusTest, ErrnoStatusNamesOperationAndErrno) {
  absl::Status s = ErrnoStatus(ENOENT, "open(", "/nope", ")");
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kNotFound, HasSubstr("open(/nope): ENOENT")));
  EXPECT_THAT(ErrnoStatus(EACCES, "x"), StatusIs(absl::StatusCode::kPermissionDenied));
}

TEST(StatusTest, MacrosPropagate) {
  int out = 0;
  SKIFF_EXPECT_OK(Quarter(8, &out));
  EXPECT_EQ(out, 2);
  EXPECT_THAT(Quarter(6, &out), StatusIs(absl::StatusCode::kInvalidArgument, "odd"));
}

TEST(StatusTest, AnnotateKeepsCode) {
  EXPECT_THAT(Annotate(absl::NotFoundError("blob"), "pull(x)"),
              StatusIs(absl::StatusCode::kNotFound, "pull(x): blob"));
  SKIFF_EXPECT_OK(Annotate(absl::OkStatus(), "ctx"));
}

TEST(UniqueFdTest, ClosesOnDestructionAndMove) {
  int raw;
  {
    UniqueFd fd(open("/dev/null", O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(fd.valid());
    raw = fd.get();
    UniqueFd moved(std::move(fd));
    EXPECT_FALSE(fd.valid());
    EXPECT_EQ(moved.get(), raw);
  }
  EXPECT_EQ(fcntl(raw, F_GETFD), -1);
  EXPECT_EQ(errno, EBADF);
}

}  // namespace
}  // namespace skiff
