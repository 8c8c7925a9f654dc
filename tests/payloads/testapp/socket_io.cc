#include "tests/payloads/testapp/socket_io.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace skiff::testapp {

Conn::Conn(UniqueFd fd) : fd_(std::move(fd)), buf_(new char[kBufferSize]) {}

ssize_t Conn::Fill() {
  if (begin_ == end_) {
    begin_ = end_ = 0;
  } else if (begin_ > 0 && end_ == kBufferSize) {
    std::memmove(buf_.get(), buf_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (end_ == kBufferSize) return 0;
  for (;;) {
    ssize_t n = recv(fd_.get(), buf_.get() + end_, kBufferSize - end_, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n > 0) end_ += static_cast<size_t>(n);
    return n;
  }
}

bool Conn::WriteAll(std::string_view data, bool more) {
  while (!data.empty()) {
    ssize_t n = send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL | (more ? MSG_MORE : 0));
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace skiff::testapp
