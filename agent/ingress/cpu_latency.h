#pragma once

// A CPU latency QoS request (/dev/cpu_dma_latency), held while the object lives: idle CPUs
// stay in idle states that wake within the requested µs (0: they poll and never halt). What
// request-based CPU gains: an unthrottled instance's threads queued on an idle CPU run
// sooner after the quota write. In a VM a halted vCPU waits for its host to schedule it
// again (milliseconds at the tail on this project's test VM); a polling one does not. The
// cost is power on bare metal and a host CPU per idle vCPU in a VM, so it is opt-in
// (skiffd --cpu-latency-qos-us). The kernel drops the request when the fd is closed, also
// when the process dies: nothing to clean up.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "sandbox/common/unique_fd.h"

namespace skiff::ingress {

class CpuLatencyRequest {
 public:
  static constexpr char kDefaultPath[] = "/dev/cpu_dma_latency";
  static constexpr int32_t kMaxUs = 2000000000;  // the kernel's "no constraint"

  // Opens `path` and writes `max_us` (0..kMaxUs) as the kernel's binary s32.
  static absl::StatusOr<CpuLatencyRequest> Hold(int32_t max_us,
                                                const std::string& path = kDefaultPath);

  // The latency in force for all requests together (reading the device), µs.
  static absl::StatusOr<int32_t> Current(const std::string& path = kDefaultPath);

  // The kernel's cpuidle driver ("none" when there is none or it cannot be read). Without
  // one, idle CPUs halt whatever is requested.
  static std::string IdleDriver();

  CpuLatencyRequest(CpuLatencyRequest&&) = default;
  CpuLatencyRequest& operator=(CpuLatencyRequest&&) = default;

  int32_t max_us() const { return max_us_; }

 private:
  CpuLatencyRequest(UniqueFd fd, int32_t max_us) : fd_(std::move(fd)), max_us_(max_us) {}

  UniqueFd fd_;
  int32_t max_us_ = 0;
};

}  // namespace skiff::ingress
