#pragma once

// A connected socket with a read buffer, used by one connection thread at a time.
// Reads and writes block; a write to a peer that went away fails (MSG_NOSIGNAL, no SIGPIPE).

#include <sys/types.h>

#include <memory>
#include <string_view>

#include "sandbox/common/unique_fd.h"

namespace skiff::testapp {

class Conn {
 public:
  static constexpr size_t kBufferSize = 64 * 1024;

  explicit Conn(UniqueFd fd);

  int fd() const { return fd_.get(); }
  // Bytes received but not consumed yet.
  std::string_view buffered() const { return {buf_.get() + begin_, end_ - begin_}; }
  void Consume(size_t n) { begin_ += n; }
  // Reads more bytes after the buffered ones (compacting first). Returns the number of bytes
  // read, 0 at EOF or when the buffer is full, -1 on error.
  ssize_t Fill();
  // Writes everything; false if the peer is gone. `more`: more data follows at once
  // (MSG_MORE), so small pieces share a segment.
  bool WriteAll(std::string_view data, bool more = false);

 private:
  UniqueFd fd_;
  std::unique_ptr<char[]> buf_;
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace skiff::testapp
