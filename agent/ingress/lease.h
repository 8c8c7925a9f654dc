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

class Lease {
 public:
  Lease() = default;
  Lease(std::shared_ptr<const BackendInfo> backend, absl::AnyInvocable<void()> release)
      : backend_(std::move(backend)), release_(std::move(release)) {}
  Lease(Lease&& other) noexcept
      : backend_(std::move(other.backend_)), release_(std::move(other.release_)) {
    other.release_ = nullptr;
  }
  Lease& operator=(Lease&& other) noexcept {
    if (this != &other) {
      Release();
      backend_ = std::move(other.backend_);
      release_ = std::move(other.release_);
      other.release_ = nullptr;
    }
    return *this;
  }
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  ~Lease() { Release(); }

  explicit operator bool() const { return backend_ != nullptr; }
  const BackendInfo& backend() const { return *backend_; }
  std::shared_ptr<const BackendInfo> backend_ptr() const { return backend_; }

  // Idempotent.
  void Release() {
    if (release_) {
      auto release = std::move(release_);
      release_ = nullptr;
      release();
    }
  }

 private:
  std::shared_ptr<const BackendInfo> backend_;
  absl::AnyInvocable<void()> release_;
};

}  // namespace skiff::ingress
