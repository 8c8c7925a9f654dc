#include "sandbox/common/file_io.h"

#include <sys/stat.h>
#include <unistd.h>

#include "tests/support/status_matchers.h"
#include "tests/unit/sandbox_common/temp_dir.h"

namespace skiff {
namespace {

using ::skiff::testing::IsOk;
using ::skiff::testing::StatusIs;
using ::skiff::testing::TempDir;
using ::testing::HasSubstr;

TEST(FileIoTest, WriteReadRoundTripAndErrorsNameThePath) {
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  const std::string f = tmp.path() + "/f";
  SKIFF_ASSERT_OK(WriteNewFile(f, std::string(10000, 'x')));
  SKIFF_ASSERT_OK_AND_ASSIGN(std::string got, ReadFileToString(f));
  EXPECT_EQ(got, std::string(10000, 'x'));
  EXPECT_THAT(ReadFileToString(f, 100), StatusIs(absl::StatusCode::kOutOfRange, HasSubstr(f)));

  // Control-file writes neither create nor truncate.
  SKIFF_ASSERT_OK(WriteControlFile(f, "abc"));
  EXPECT_EQ(ReadFileToString(f)->substr(0, 4), "abcx");
  EXPECT_THAT(WriteControlFile(tmp.path() + "/missing", "1"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/missing")));
  EXPECT_THAT(ReadFileToString(tmp.path() + "/missing"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("open(" + tmp.path() + "/missing")));

  EXPECT_THAT(PathExists(f), IsOk());
  EXPECT_TRUE(*PathExists(f));
  EXPECT_FALSE(*PathExists(tmp.path() + "/nope"));
  EXPECT_THAT(PathExists(f + "/below-a-file"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(FileIoTest, ReadsProcFilesWhoseSizeIsZero) {
  SKIFF_ASSERT_OK_AND_ASSIGN(std::string status, ReadFileToString("/proc/self/status"));
  EXPECT_THAT(status, HasSubstr("Pid:\t"));
}

}  // namespace
}  // namespace skiff
