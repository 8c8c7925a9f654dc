#include "shim/console_log.h"

#include <sys/uio.h>
#include <time.h>

#include <cerrno>
#include <cstdio>

namespace skiff::shim {

std::string FormatCriTimestamp(absl::Time t) {
  timespec ts = absl::ToTimespec(t);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char buf[64];
  snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec);
  return buf;
}

void ConsoleLog::WriteRecord(ConsoleStream stream, bool partial, const char* data, size_t size,
                             absl::Time now) {
  std::string head = FormatCriTimestamp(now);
  head += stream == ConsoleStream::kStdout ? " stdout " : " stderr ";
  head += partial ? "P " : "F ";
  struct iovec iov[3] = {
      {head.data(), head.size()}, {const_cast<char*>(data), size}, {const_cast<char*>("\n"), 1}};
  // One writev per record on an O_APPEND fd: records never interleave.
  ssize_t want = static_cast<ssize_t>(head.size() + size + 1);
  ssize_t n;
  do {
    n = writev(file_.get(), iov, 3);
  } while (n < 0 && errno == EINTR);
  if (n != want) ++write_errors_;
}

void ConsoleLog::Append(ConsoleStream stream, const char* data, size_t size, absl::Time now) {
  std::string& buf = pending_[static_cast<int>(stream)];
  buf.append(data, size);
  size_t start = 0;
  while (true) {
    size_t nl = buf.find('\n', start);
    size_t line_end = nl == std::string::npos ? buf.size() : nl;
    if (line_end - start > kMaxRecordBytes) {
      WriteRecord(stream, true, buf.data() + start, kMaxRecordBytes, now);
      start += kMaxRecordBytes;
      continue;
    }
    if (nl == std::string::npos) break;
    WriteRecord(stream, false, buf.data() + start, nl - start, now);
    start = nl + 1;
  }
  buf.erase(0, start);
  if (buf.capacity() > 4 * kMaxRecordBytes && buf.size() < kMaxRecordBytes) buf.shrink_to_fit();
}

void ConsoleLog::Flush(ConsoleStream stream, absl::Time now) {
  std::string& buf = pending_[static_cast<int>(stream)];
  if (!buf.empty()) WriteRecord(stream, false, buf.data(), buf.size(), now);
  buf.clear();
  buf.shrink_to_fit();
}

}  // namespace skiff::shim
