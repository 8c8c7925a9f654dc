#include "agent/ingress/proxy_upstream_pool.h"

#include <sys/socket.h>

#include <cerrno>
#include <utility>

namespace skiff::ingress::proxy {
namespace {

// An idle HTTP/1.1 connection has nothing to read: EOF or stray bytes mean it is unusable.
bool StillIdle(Socket& socket) {
  char c;
  ssize_t n = ::recv(socket.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace

std::optional<Socket> UpstreamPool::Take(const std::string& backend, bool resendable) {
  auto it = idle_.find(backend);
  if (it == idle_.end()) return std::nullopt;
  std::deque<Idle>& list = it->second;
  const Clock::time_point now = Clock::now();
  std::optional<Socket> found;
  while (!list.empty()) {
    Idle idle = std::move(list.back());
    list.pop_back();
    const Clock::duration idle_for = now - idle.since;
    if (idle_for < idle_timeout_ &&
        ((resendable && idle_for < kUncheckedReuse) || StillIdle(idle.socket))) {
      found.emplace(std::move(idle.socket));
      break;
    }
    error_code ignored;
    idle.socket.close(ignored);
  }
  if (list.empty()) idle_.erase(it);
  return found;
}

void UpstreamPool::Put(const std::string& backend, Socket socket) {
  error_code ignored;
  if (max_idle_ == 0) {
    socket.close(ignored);
    return;
  }
  std::deque<Idle>& list = idle_[backend];
  while (list.size() >= max_idle_) {
    list.front().socket.close(ignored);
    list.pop_front();
  }
  list.push_back(Idle{std::move(socket), Clock::now()});
}

void UpstreamPool::Sweep() {
  const Clock::time_point now = Clock::now();
  for (auto it = idle_.begin(); it != idle_.end();) {
    std::deque<Idle>& list = it->second;
    while (!list.empty() && now - list.front().since >= idle_timeout_) {
      error_code ignored;
      list.front().socket.close(ignored);
      list.pop_front();
    }
    if (list.empty()) {
      idle_.erase(it++);
    } else {
      ++it;
    }
  }
}

void UpstreamPool::Clear() {
  for (auto& [backend, list] : idle_) {
    for (Idle& idle : list) {
      error_code ignored;
      idle.socket.close(ignored);
    }
  }
  idle_.clear();
}

size_t UpstreamPool::idle_count() const {
  size_t n = 0;
  for (const auto& [backend, list] : idle_) n += list.size();
  return n;
}

}  // namespace skiff::ingress::proxy
