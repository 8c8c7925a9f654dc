#pragma once

// The instance's stdout/stderr as a CRI-format log file (what kubelet and containerd
// write): one record per line,
//   "<RFC3339Nano UTC, 9 digits> <stdout|stderr> <F|P> <bytes>\n"
// F = full line; P = partial: the line continues in the next record (lines longer than
// kMaxRecordBytes, or an unterminated tail cut by a flush).

#include <cstddef>
#include <string>

#include "absl/time/time.h"
#include "sandbox/common/unique_fd.h"

namespace skiff::shim {

enum class ConsoleStream { kStdout = 0, kStderr = 1 };

// "2026-11-23T04:10:15.123456789Z"
std::string FormatCriTimestamp(absl::Time t);

class ConsoleLog {
 public:
  static constexpr size_t kMaxRecordBytes = 16 * 1024;

  // `file` is opened O_WRONLY|O_APPEND by the caller.
  explicit ConsoleLog(UniqueFd file) : file_(std::move(file)) {}

  // Buffers `data` and writes every complete line as an F record (and P records for
  // overlong lines). Write errors are counted, not fatal: the instance keeps running.
  void Append(ConsoleStream stream, const char* data, size_t size, absl::Time now);
  // The stream ended: writes its unterminated tail (if any) as an F record.
  void Flush(ConsoleStream stream, absl::Time now);

  size_t write_errors() const { return write_errors_; }

 private:
  void WriteRecord(ConsoleStream stream, bool partial, const char* data, size_t size,
                   absl::Time now);

  UniqueFd file_;
  std::string pending_[2];
  size_t write_errors_ = 0;
};

}  // namespace skiff::shim
