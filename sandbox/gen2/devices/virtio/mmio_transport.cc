#include "sandbox/gen2/devices/virtio/mmio_transport.h"

#include <spdlog/spdlog.h>

#include <cstring>
#include <utility>

#include "sandbox/gen2/devices/virtio/virtio.h"

namespace skiff::gen2::virtio {

using namespace mmio;  // NOLINT: the register names

void MmioTransport::Signals::Raise(uint32_t bits) {
  interrupt_status.fetch_or(bits);
  if (irq != nullptr) irq->Trigger();
}

void MmioTransport::Signals::SignalUsedBuffers() { Raise(kInterruptUsedBuffer); }

void MmioTransport::Signals::SignalConfigChange() {
  config_generation.fetch_add(1);
  Raise(kInterruptConfigChange);
}

void MmioTransport::Signals::MarkBroken(const absl::Status& why) {
  if (broken.exchange(true)) return;
  // Logged once per transport: a guest that breaks its device in a loop cannot flood the log.
  if (!logged_broken.exchange(true)) {
    spdlog::error("{}: driver broke the device, DEVICE_NEEDS_RESET set: {}", device_name,
                  why.ToString());
  } else {
    spdlog::debug("{}: broken again: {}", device_name, why.ToString());
  }
  Raise(kInterruptConfigChange);
}

MmioTransport::MmioTransport(const GuestMemory& memory, std::shared_ptr<VirtioDevice> device,
                             Interrupt* irq)
    : memory_(memory),
      device_(std::move(device)),
      queue_max_sizes_(device_->queue_max_sizes().begin(), device_->queue_max_sizes().end()),
      queues_(queue_max_sizes_.size()) {
  signals_.irq = irq;
  signals_.device_name = device_->name();
}

MmioTransport::~MmioTransport() {
  absl::MutexLock lock(&mu_);
  ResetLocked();
}

uint32_t MmioTransport::status() const {
  absl::MutexLock lock(&mu_);
  return status_ | (signals_.broken.load() ? kStatusDeviceNeedsReset : 0);
}

void MmioTransport::Read(uint64_t offset, std::span<uint8_t> data) {
  if (offset >= kConfigSpace) {
    absl::MutexLock lock(&mu_);
    device_->ReadConfig(offset - kConfigSpace, data);
    return;
  }
  if (data.size() != 4 || offset % 4 != 0) {
    std::memset(data.data(), 0, data.size());
    return;
  }
  uint32_t value;
  {
    absl::MutexLock lock(&mu_);
    value = ReadRegister(offset);
  }
  std::memcpy(data.data(), &value, 4);
}

void MmioTransport::Write(uint64_t offset, std::span<const uint8_t> data) {
  absl::MutexLock lock(&mu_);
  if (offset >= kConfigSpace) {
    device_->WriteConfig(offset - kConfigSpace, data);
    return;
  }
  if (data.size() != 4 || offset % 4 != 0) return;
  uint32_t value;
  std::memcpy(&value, data.data(), 4);
  WriteRegister(offset, value);
}

void MmioTransport::NotifyQueue(uint32_t queue) {
  absl::MutexLock lock(&mu_);
  WriteRegister(kRegQueueNotify, queue);
}

QueueConfig* MmioTransport::SelectedQueue() {
  return queue_sel_ < queues_.size() ? &queues_[queue_sel_] : nullptr;
}

bool MmioTransport::QueueRegistersWritable() const {
  return (status_ & kStatusFeaturesOk) != 0 && (status_ & kStatusDriverOk) == 0;
}

uint32_t MmioTransport::ReadRegister(uint64_t offset) {
  switch (offset) {
    case kRegMagicValue:
      return kMagicValue;
    case kRegVersion:
      return kVersion;
    case kRegDeviceId:
      return device_->device_type();
    case kRegVendorId:
      return kVendorId;
    case kRegDeviceFeatures:
      if (device_features_sel_ > 1) return 0;
      return static_cast<uint32_t>(device_->offered_features() >> (32 * device_features_sel_));
    case kRegQueueNumMax:
      return queue_sel_ < queue_max_sizes_.size() ? queue_max_sizes_[queue_sel_] : 0;
    case kRegQueueReady: {
      const QueueConfig* q = SelectedQueue();
      return q != nullptr && q->ready ? 1 : 0;
    }
    case kRegInterruptStatus:
      return signals_.interrupt_status.load();
    case kRegStatus:
      return status_ | (signals_.broken.load() ? kStatusDeviceNeedsReset : 0);
    case kRegShmLenLow:
    case kRegShmLenHigh:
    case kRegShmBaseLow:
    case kRegShmBaseHigh:
      return 0xffffffff;  // no shared memory regions
    case kRegConfigGeneration:
      return signals_.config_generation.load();
    default:
      return 0;  // write-only or unknown
  }
}

void MmioTransport::WriteRegister(uint64_t offset, uint32_t value) {
  QueueConfig* q = SelectedQueue();
  auto set_low = [](uint64_t& addr, uint32_t v) { addr = (addr & ~uint64_t{0xffffffff}) | v; };
  auto set_high = [](uint64_t& addr, uint32_t v) {
    addr = (addr & 0xffffffff) | (uint64_t{v} << 32);
  };
  switch (offset) {
    case kRegDeviceFeaturesSel:
      device_features_sel_ = value;
      return;
    case kRegDriverFeaturesSel:
      driver_features_sel_ = value;
      return;
    case kRegDriverFeatures:
      // Only between DRIVER and FEATURES_OK (3.1.1 steps 3-5).
      if ((status_ & kStatusDriver) == 0 || (status_ & kStatusFeaturesOk) != 0) return;
      if (driver_features_sel_ == 0) {
        driver_features_ = (driver_features_ & ~uint64_t{0xffffffff}) | value;
      } else if (driver_features_sel_ == 1) {
        driver_features_ = (driver_features_ & 0xffffffff) | (uint64_t{value} << 32);
      }
      return;
    case kRegQueueSel:
      queue_sel_ = value;
      return;
    case kRegQueueNotify:
      if (active_ && !signals_.broken.load() && value < queues_.size()) device_->Notify(value);
      return;
    case kRegInterruptAck:
      signals_.interrupt_status.fetch_and(~value);
      return;
    case kRegStatus:
      WriteStatus(value);
      return;
    default:
      break;
  }
  if (q == nullptr || !QueueRegistersWritable()) return;
  switch (offset) {
    case kRegQueueNum:
      q->size = static_cast<uint16_t>(value > 0xffff ? 0 : value);  // 0: invalid at DRIVER_OK
      return;
    case kRegQueueReady:
      q->ready = (value & 1) != 0;
      return;
    case kRegQueueDescLow:
      set_low(q->desc_addr, value);
      return;
    case kRegQueueDescHigh:
      set_high(q->desc_addr, value);
      return;
    case kRegQueueDriverLow:
      set_low(q->avail_addr, value);
      return;
    case kRegQueueDriverHigh:
      set_high(q->avail_addr, value);
      return;
    case kRegQueueDeviceLow:
      set_low(q->used_addr, value);
      return;
    case kRegQueueDeviceHigh:
      set_high(q->used_addr, value);
      return;
    default:
      return;
  }
}

bool MmioTransport::FeaturesAcceptable() const {
  const uint64_t offered = device_->offered_features();
  return (driver_features_ & ~offered) == 0 && (driver_features_ & FeatureBit(kFVersion1)) != 0;
}

void MmioTransport::WriteStatus(uint32_t value) {
  if (value == 0) {
    ResetLocked();
    return;
  }
  // DEVICE_NEEDS_RESET is the device's to set; the driver may only add bits (3.1.1).
  value &= ~kStatusDeviceNeedsReset & 0xff;
  if ((status_ & ~value) != 0) return;
  const uint32_t added = value & ~status_;
  if ((added & kStatusFeaturesOk) != 0 && !FeaturesAcceptable()) {
    value &= ~kStatusFeaturesOk;  // the driver reads it back and gives up (3.1.1 step 6)
  }
  if ((added & kStatusDriverOk) != 0 && (value & kStatusFeaturesOk) == 0) {
    value &= ~kStatusDriverOk;
  }
  status_ = value;
  if ((added & kStatusDriverOk) != 0 && (status_ & kStatusDriverOk) != 0) ActivateLocked();
}

void MmioTransport::ActivateLocked() {
  if (signals_.broken.load()) return;
  std::vector<Queue> queues;
  queues.reserve(queues_.size());
  for (size_t i = 0; i < queues_.size(); ++i) {
    absl::StatusOr<Queue> q =
        Queue::Create(memory_, i, queues_[i], queue_max_sizes_[i], driver_features_);
    if (!q.ok()) {
      signals_.MarkBroken(q.status());
      return;
    }
    queues.push_back(std::move(*q));
  }
  absl::Status s = device_->Activate(driver_features_, std::move(queues), &signals_);
  if (!s.ok()) {
    signals_.MarkBroken(s);
    return;
  }
  active_ = true;
}

void MmioTransport::ResetLocked() {
  device_->Reset();
  active_ = false;
  status_ = 0;
  device_features_sel_ = 0;
  driver_features_sel_ = 0;
  driver_features_ = 0;
  queue_sel_ = 0;
  queues_.assign(queue_max_sizes_.size(), QueueConfig{});
  signals_.interrupt_status.store(0);
  signals_.broken.store(false);
}

}  // namespace skiff::gen2::virtio
