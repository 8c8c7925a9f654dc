#include "shim/console_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sandbox/common/unique_fd.h"

namespace skiff::shim {
namespace {

using ::testing::ElementsAre;

class ConsoleLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/skiff-console-test-XXXXXX";
    int fd = mkstemp(tmpl);
    ASSERT_GE(fd, 0);
    UniqueFd owned(fd);
    path_ = tmpl;
    UniqueFd append(open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC));
    ASSERT_TRUE(append.valid());
    log_ = std::make_unique<ConsoleLog>(std::move(append));
  }
  void TearDown() override { unlink(path_.c_str()); }

  std::vector<std::string> Lines() {
    UniqueFd fd(open(path_.c_str(), O_RDONLY | O_CLOEXEC));
    std::string text;
    char buf[65536];
    ssize_t n;
    while ((n = read(fd.get(), buf, sizeof(buf))) > 0) text.append(buf, static_cast<size_t>(n));
    return absl::StrSplit(text, '\n', absl::SkipEmpty());
  }

  const absl::Time t_ = absl::FromUnixNanos(1795406415123456789);  // 2026-11-23T04:00:15.123456789Z
  std::string path_;
  std::unique_ptr<ConsoleLog> log_;
};

TEST(CriTimestampTest, NineFractionDigitsUtc) {
  EXPECT_EQ(FormatCriTimestamp(absl::FromUnixNanos(1795406415123456789)),
            "2026-11-23T04:00:15.123456789Z");
  EXPECT_EQ(FormatCriTimestamp(absl::FromUnixSeconds(0)), "1970-01-01T00:00:00.000000000Z");
}

TEST_F(ConsoleLogTest, CompleteLinesAreFullRecords) {
  std::string in = "one\ntwo\n";
  log_->Append(ConsoleStream::kStdout, in.data(), in.size(), t_);
  EXPECT_THAT(Lines(), ElementsAre("2026-11-23T04:00:15.123456789Z stdout F one",
                                   "2026-11-23T04:00:15.123456789Z stdout F two"));
}

TEST_F(ConsoleLogTest, LinesSplitAcrossReadsAreJoinedAndStreamsKeptApart) {
  log_->Append(ConsoleStream::kStdout, "hel", 3, t_);
  log_->Append(ConsoleStream::kStderr, "err\n", 4, t_);
  log_->Append(ConsoleStream::kStdout, "lo\n", 3, t_);
  EXPECT_THAT(Lines(), ElementsAre("2026-11-23T04:00:15.123456789Z stderr F err",
                                   "2026-11-23T04:00:15.123456789Z stdout F hello"));
}

TEST_F(ConsoleLogTest, OverlongLineIsSplitIntoPartialRecords) {
  std::string in(ConsoleLog::kMaxRecordBytes * 2 + 10, 'x');
  in += "\n";
  log_->Append(ConsoleStream::kStdout, in.data(), in.size(), t_);
  std::vector<std::string> lines = Lines();
  ASSERT_EQ(lines.size(), 3u);
  std::string prefix = "2026-11-23T04:00:15.123456789Z stdout ";
  EXPECT_EQ(lines[0], prefix + "P " + std::string(ConsoleLog::kMaxRecordBytes, 'x'));
  EXPECT_EQ(lines[1], prefix + "P " + std::string(ConsoleLog::kMaxRecordBytes, 'x'));
  EXPECT_EQ(lines[2], prefix + "F " + std::string(10, 'x'));
}

TEST_F(ConsoleLogTest, FlushWritesTheUnterminatedTail) {
  log_->Append(ConsoleStream::kStderr, "tail", 4, t_);
  EXPECT_TRUE(Lines().empty());
  log_->Flush(ConsoleStream::kStderr, t_);
  log_->Flush(ConsoleStream::kStderr, t_);  // nothing more
  EXPECT_THAT(Lines(), ElementsAre("2026-11-23T04:00:15.123456789Z stderr F tail"));
}

TEST_F(ConsoleLogTest, EmptyLineAndBinaryBytesAreKept) {
  std::string in("\n\x01\x02z\n", 5);
  log_->Append(ConsoleStream::kStdout, in.data(), in.size(), t_);
  std::vector<std::string> lines = Lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "2026-11-23T04:00:15.123456789Z stdout F ");
  EXPECT_EQ(lines[1], std::string("2026-11-23T04:00:15.123456789Z stdout F \x01\x02z"));
  EXPECT_EQ(log_->write_errors(), 0u);
}

}  // namespace
}  // namespace skiff::shim
