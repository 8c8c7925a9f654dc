#pragma once

// A Lease is one request's claim on one instance (a "backend") of a service: while it is
// held the instance counts the request as in flight (against its concurrency limit, and
// for the CPU throttle). Releasing it (explicitly or by destruction) gives the slot back:
// the next queued request for that instance's service may take it.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"

namespace skiff::ingress {

// An instance as the ingress sees it: where to send requests and how many at once.
struct BackendInfo {
  std::string instance_id;
  std::string service;
  std::string ip;  // dotted IPv4 the host reaches the instance at
  uint16_t port = 0;
  uint32_t concurrency = 80;                            // 1..1000
  absl::Duration request_timeout = absl::Seconds(300);  // → 504 past this
};

// Runs its release callback exactly once: on Release() or on destruction, whichever comes
// first (move-only; assigning over one releases it first).
class ScopedRelease {
 public:
  ScopedRelease() = default;
  explicit ScopedRelease(absl::AnyInvocable<void()> release) : release_(std::move(release)) {}
  ScopedRelease(ScopedRelease&& other) noexcept
      : release_(std::exchange(other.release_, nullptr)) {}
  ScopedRelease& operator=(ScopedRelease&& other) noexcept {
    if (this != &other) {
      Release();
      release_ = std::exchange(other.release_, nullptr);
    }
    return *this;
  }
  ScopedRelease(const ScopedRelease&) = delete;
  ScopedRelease& operator=(const ScopedRelease&) = delete;
  ~ScopedRelease() { Release(); }

  explicit operator bool() const { return static_cast<bool>(release_); }
  // Idempotent.
  void Release() {
    if (release_) std::exchange(release_, nullptr)();
  }

 private:
  absl::AnyInvocable<void()> release_;
};

class Lease {
 public:
  Lease() = default;
  Lease(std::shared_ptr<const BackendInfo> backend, absl::AnyInvocable<void()> release)
      : backend_(std::move(backend)), release_(std::move(release)) {}

  explicit operator bool() const { return backend_ != nullptr; }
  const BackendInfo& backend() const { return *backend_; }
  std::shared_ptr<const BackendInfo> backend_ptr() const { return backend_; }

  // Idempotent.
  void Release() { release_.Release(); }

 private:
  std::shared_ptr<const BackendInfo> backend_;
  ScopedRelease release_;
};

}  // namespace skiff::ingress
