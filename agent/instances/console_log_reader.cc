#include "agent/instances/console_log_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include "sandbox/common/status.h"

namespace skiff::agent {

absl::StatusOr<ConsoleLogReader> ConsoleLogReader::Open(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return ErrnoStatus(errno, "open(", path, ")");
  return ConsoleLogReader(path, std::move(fd));
}

absl::StatusOr<std::vector<CriRecord>> ConsoleLogReader::ReadAvailable() {
  std::vector<CriRecord> out;
  char buf[64 * 1024];
  for (;;) {
    ssize_t n = read(fd_.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "read(", path_, ")");
    if (n == 0) break;
    pending_.append(buf, static_cast<size_t>(n));
    if (out.size() > 4096) break;  // let the caller send before reading more
    size_t start = 0;
    for (size_t nl; (nl = pending_.find('\n', start)) != std::string::npos; start = nl + 1) {
      absl::string_view line(pending_.data() + start, nl - start);
      auto rec = ParseCriRecord(line);
      if (rec.ok()) {
        out.push_back(std::move(*rec));
      } else {
        CriRecord raw;
        raw.time = absl::Now();
        raw.line = std::string(line);
        out.push_back(std::move(raw));
      }
    }
    pending_.erase(0, start);
  }
  return out;
}

}  // namespace skiff::agent
