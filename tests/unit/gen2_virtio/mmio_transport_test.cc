// The virtio-mmio transport's register state machine, driven the way a driver drives it
// (virtio 1.2, 3.1.1 and 4.2.3), against a recording fake device.

#include "sandbox/gen2/devices/virtio/mmio_transport.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "sandbox/gen2/devices/virtio/virtio.h"
#include "tests/support/status_matchers.h"
#include "tests/unit/gen2_virtio/virtio_test_driver.h"

namespace skiff::gen2::virtio {
namespace {

using ::skiff::gen2::virtio::testing::CountingInterrupt;
using ::skiff::gen2::virtio::testing::DriverQueue;
using ::skiff::gen2::virtio::testing::FakeGuest;
using ::skiff::gen2::virtio::testing::MmioDriver;
using ::skiff::testing::StatusIs;
using ::testing::ElementsAre;

constexpr uint64_t kBase = 0x10000;
constexpr uint64_t kOffered =
    FeatureBit(kFVersion1) | FeatureBit(kFRingIndirectDesc) | FeatureBit(5);
constexpr uint32_t kAllOk =
    kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk;

// Records what the transport asks of it.
class FakeDevice final : public VirtioDevice {
 public:
  const char* name() const override { return "fake"; }
  uint32_t device_type() const override { return 42; }
  uint64_t offered_features() const override { return kOffered; }
  std::span<const uint16_t> queue_max_sizes() const override { return kMax; }
  void ReadConfig(uint64_t offset, std::span<uint8_t> data) override {
    ReadConfigBytes(config, offset, data);
  }
  void WriteConfig(uint64_t offset, std::span<const uint8_t> data) override {
    for (size_t i = 0; i < data.size() && offset + i < sizeof(config); ++i) {
      config[offset + i] = data[i];
    }
  }
  absl::Status Activate(uint64_t features, std::vector<Queue> queues,
                        VirtioInterrupt* irq) override {
    if (fail_activate) return absl::InternalError("refused");
    acked = features;
    activations++;
    queue_sizes.clear();
    for (const Queue& q : queues) queue_sizes.push_back(q.size());
    interrupt = irq;
    return absl::OkStatus();
  }
  void Notify(uint32_t q) override { notified.push_back(q); }
  void Reset() override {
    resets++;
    interrupt = nullptr;
  }

  static constexpr uint16_t kMax[] = {64, 8};
  uint8_t config[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  bool fail_activate = false;
  uint64_t acked = 0;
  int activations = 0;
  int resets = 0;
  std::vector<uint16_t> queue_sizes;
  std::vector<uint32_t> notified;
  VirtioInterrupt* interrupt = nullptr;
};

class MmioTransportTest : public ::testing::Test {
 protected:
  MmioTransportTest()
      : guest_(1 << 20, kBase),
        device_(std::make_shared<FakeDevice>()),
        transport_(guest_.memory(), device_, &irq_),
        driver_(transport_),
        q0_(guest_, 64, kBase, kBase + 0x1000, kBase + 0x2000),
        q1_(guest_, 8, kBase + 0x4000, kBase + 0x5000, kBase + 0x6000) {}

  FakeGuest guest_;
  CountingInterrupt irq_;
  std::shared_ptr<FakeDevice> device_;
  MmioTransport transport_;
  MmioDriver driver_;
  DriverQueue q0_, q1_;
};

TEST_F(MmioTransportTest, IdentityRegisters) {
  EXPECT_EQ(driver_.Read32(mmio::kRegMagicValue), 0x74726976u);
  EXPECT_EQ(driver_.Read32(mmio::kRegVersion), 2u);
  EXPECT_EQ(driver_.Read32(mmio::kRegDeviceId), 42u);
  EXPECT_EQ(driver_.Read32(mmio::kRegVendorId), MmioTransport::kVendorId);
  EXPECT_EQ(driver_.DeviceFeatures(), kOffered);
  driver_.Write32(mmio::kRegDeviceFeaturesSel, 2);
  EXPECT_EQ(driver_.Read32(mmio::kRegDeviceFeatures), 0u);
  EXPECT_EQ(driver_.Read32(mmio::kRegShmLenLow), 0xffffffffu) << "no shared memory region";
  EXPECT_EQ(driver_.Read32(mmio::kRegStatus), 0u);
}

TEST_F(MmioTransportTest, InitSequenceActivatesWithTheValidatedQueues) {
  SKIFF_ASSERT_OK(driver_.Init(kOffered, {q0_.config(), q1_.config()}));
  EXPECT_EQ(driver_.Status(), kAllOk);
  EXPECT_EQ(device_->activations, 1);
  EXPECT_EQ(device_->acked, kOffered);
  EXPECT_THAT(device_->queue_sizes, ElementsAre(64, 8));

  driver_.Notify(1);
  driver_.Notify(0);
  driver_.Notify(2);          // no such queue: dropped
  transport_.NotifyQueue(1);  // the ioeventfd path
  EXPECT_THAT(device_->notified, ElementsAre(1, 0, 1));

  device_->interrupt->SignalUsedBuffers();
  EXPECT_EQ(irq_.count(), 1);
  EXPECT_EQ(driver_.Read32(mmio::kRegInterruptStatus), mmio::kInterruptUsedBuffer);
  driver_.Write32(mmio::kRegInterruptAck, mmio::kInterruptUsedBuffer);
  EXPECT_EQ(driver_.Read32(mmio::kRegInterruptStatus), 0u);

  const uint32_t generation = driver_.Read32(mmio::kRegConfigGeneration);
  device_->interrupt->SignalConfigChange();
  EXPECT_EQ(driver_.Read32(mmio::kRegInterruptStatus), mmio::kInterruptConfigChange);
  EXPECT_NE(driver_.Read32(mmio::kRegConfigGeneration), generation);
  EXPECT_EQ(irq_.count(), 2);
}

TEST_F(MmioTransportTest, DriverMustAcceptVersion1) {
  driver_.SetStatus(kStatusAcknowledge | kStatusDriver);
  driver_.WriteDriverFeatures(kOffered & ~FeatureBit(kFVersion1));
  driver_.SetStatus(kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
  EXPECT_EQ(driver_.Status() & kStatusFeaturesOk, 0u) << "legacy driver refused";
  // DRIVER_OK without FEATURES_OK does not stick either.
  driver_.SetStatus(kStatusAcknowledge | kStatusDriver | kStatusDriverOk);
  EXPECT_EQ(driver_.Status() & kStatusDriverOk, 0u);
  EXPECT_EQ(device_->activations, 0);
}

TEST_F(MmioTransportTest, DriverMayNotAcceptUnofferedFeatures) {
  driver_.SetStatus(kStatusAcknowledge | kStatusDriver);
  driver_.WriteDriverFeatures(kOffered | FeatureBit(kFRingEventIdx));
  driver_.SetStatus(kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
  EXPECT_EQ(driver_.Status() & kStatusFeaturesOk, 0u);
}

TEST_F(MmioTransportTest, FeaturesFrozenAfterFeaturesOk) {
  driver_.SetStatus(kStatusAcknowledge | kStatusDriver);
  driver_.WriteDriverFeatures(FeatureBit(kFVersion1));
  driver_.SetStatus(kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
  driver_.WriteDriverFeatures(kOffered);  // too late: ignored
  q0_.config();
  driver_.ConfigureQueue(0, q0_.config());
  driver_.ConfigureQueue(1, q1_.config());
  driver_.SetStatus(kAllOk);
  EXPECT_EQ(device_->acked, FeatureBit(kFVersion1));
}

TEST_F(MmioTransportTest, StatusBitsCannotBeClearedExceptByReset) {
  SKIFF_ASSERT_OK(driver_.Init(kOffered, {q0_.config(), q1_.config()}));
  driver_.SetStatus(kStatusAcknowledge | kStatusDriver);
  EXPECT_EQ(driver_.Status(), kAllOk);
  // The driver cannot set DEVICE_NEEDS_RESET itself; FAILED it can.
  driver_.SetStatus(kAllOk | kStatusDeviceNeedsReset);
  EXPECT_EQ(driver_.Status(), kAllOk);
  driver_.SetStatus(kAllOk | kStatusFailed);
  EXPECT_EQ(driver_.Status(), kAllOk | kStatusFailed);
}

TEST_F(MmioTransportTest, QueueRegistersOnlyBetweenFeaturesOkAndDriverOk) {
  // Before FEATURES_OK: ignored.
  driver_.SetStatus(kStatusAcknowledge | kStatusDriver);
  driver_.ConfigureQueue(0, q0_.config());
  driver_.Write32(mmio::kRegQueueSel, 0);
  EXPECT_EQ(driver_.Read32(mmio::kRegQueueReady), 0u);
  // Between: taken.
  driver_.WriteDriverFeatures(kOffered);
  driver_.SetStatus(kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
  driver_.ConfigureQueue(0, q0_.config());
  driver_.ConfigureQueue(1, q1_.config());
  EXPECT_EQ(driver_.Read32(mmio::kRegQueueReady), 1u);
  driver_.Write32(mmio::kRegQueueSel, 0);
  EXPECT_EQ(driver_.Read32(mmio::kRegQueueNumMax), 64u);
  driver_.Write32(mmio::kRegQueueSel, 7);
  EXPECT_EQ(driver_.Read32(mmio::kRegQueueNumMax), 0u) << "no queue 7";
  EXPECT_EQ(driver_.Read32(mmio::kRegQueueReady), 0u);
  driver_.SetStatus(kAllOk);
  ASSERT_EQ(device_->activations, 1);
  // After DRIVER_OK: ignored (the device keeps the queues it was given).
  driver_.Write32(mmio::kRegQueueSel, 0);
  driver_.Write32(mmio::kRegQueueReady, 0);
  EXPECT_EQ(driver_.Read32(mmio::kRegQueueReady), 1u);
}

TEST_F(MmioTransportTest, NotifyBeforeDriverOkIsIgnored) {
  driver_.Notify(0);
  driver_.SetStatus(kStatusAcknowledge | kStatusDriver);
  driver_.Notify(0);
  EXPECT_TRUE(device_->notified.empty());
}

TEST_F(MmioTransportTest, ResetClearsEverythingAndAllowsReinit) {
  SKIFF_ASSERT_OK(driver_.Init(kOffered, {q0_.config(), q1_.config()}));
  device_->interrupt->SignalUsedBuffers();
  const int resets = device_->resets;
  driver_.SetStatus(0);
  EXPECT_EQ(device_->resets, resets + 1);
  EXPECT_EQ(driver_.Status(), 0u);
  EXPECT_EQ(driver_.Read32(mmio::kRegInterruptStatus), 0u);
  driver_.Write32(mmio::kRegQueueSel, 0);
  EXPECT_EQ(driver_.Read32(mmio::kRegQueueReady), 0u);
  driver_.Notify(0);
  EXPECT_TRUE(device_->notified.empty());
  SKIFF_ASSERT_OK(driver_.Init(FeatureBit(kFVersion1), {q0_.config(), q1_.config()}));
  EXPECT_EQ(device_->activations, 2);
  EXPECT_EQ(device_->acked, FeatureBit(kFVersion1));
}

TEST_F(MmioTransportTest, BadQueueAtDriverOkBreaksTheDevice) {
  QueueConfig bad = q1_.config();
  bad.size = 16;  // above the device's maximum of 8
  EXPECT_THAT(driver_.Init(kOffered, {q0_.config(), bad}),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  QueueConfig not_ready = q1_.config();
  not_ready.ready = false;
  EXPECT_THAT(driver_.Init(kOffered, {q0_.config(), not_ready}),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_NE(driver_.Status() & kStatusDeviceNeedsReset, 0u);
  EXPECT_EQ(device_->activations, 0);
  EXPECT_EQ(driver_.Read32(mmio::kRegInterruptStatus), mmio::kInterruptConfigChange);
  driver_.Notify(0);
  EXPECT_TRUE(device_->notified.empty());
}

TEST_F(MmioTransportTest, ActivationErrorBreaksTheDevice) {
  device_->fail_activate = true;
  EXPECT_THAT(driver_.Init(kOffered, {q0_.config(), q1_.config()}),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_TRUE(transport_.broken());
  EXPECT_EQ(irq_.count(), 1);
}

TEST_F(MmioTransportTest, ConfigSpaceAndOddAccesses) {
  uint8_t b[8] = {};
  transport_.Read(mmio::kConfigSpace + 2, std::span<uint8_t>(b, 2));
  EXPECT_EQ(b[0], 3);
  EXPECT_EQ(b[1], 4);
  transport_.Read(mmio::kConfigSpace + 6, std::span<uint8_t>(b, 4));
  EXPECT_THAT(std::vector<uint8_t>(b, b + 4), ElementsAre(7, 8, 0, 0)) << "past the end: zero";
  const uint8_t w[2] = {0xaa, 0xbb};
  transport_.Write(mmio::kConfigSpace + 1, w);
  EXPECT_EQ(device_->config[1], 0xaa);
  // Registers take aligned 32-bit accesses only.
  uint8_t two[2] = {0xff, 0xff};
  transport_.Read(mmio::kRegMagicValue, std::span<uint8_t>(two, 2));
  EXPECT_EQ(two[0], 0);
  transport_.Read(mmio::kRegMagicValue + 1, std::span<uint8_t>(b, 4));
  EXPECT_EQ(b[0], 0);
  const uint8_t status_byte[1] = {kStatusAcknowledge};
  transport_.Write(mmio::kRegStatus, status_byte);
  EXPECT_EQ(driver_.Status(), 0u);
}

// vCPUs hammer the same transport: no data race (run under TSAN to see it), no deadlock with
// the device signalling from its own thread.
TEST_F(MmioTransportTest, ConcurrentAccessFromSeveralThreads) {
  SKIFF_ASSERT_OK(driver_.Init(kOffered, {q0_.config(), q1_.config()}));
  VirtioInterrupt* interrupt = device_->interrupt;
  std::atomic<bool> stop{false};
  std::thread device_thread([&] {
    while (!stop.load()) interrupt->SignalUsedBuffers();
  });
  std::vector<std::thread> vcpus;
  for (int t = 0; t < 3; ++t) {
    vcpus.emplace_back([&] {
      MmioDriver d(transport_);
      for (int i = 0; i < 2000; ++i) {
        d.AckInterrupts();
        d.Read32(mmio::kRegStatus);
        d.Read32(mmio::kRegQueueNumMax);
      }
    });
  }
  for (std::thread& t : vcpus) t.join();
  stop = true;
  device_thread.join();
  EXPECT_GT(irq_.count(), 0);
  EXPECT_EQ(driver_.Status(), kAllOk);
}

}  // namespace
}  // namespace skiff::gen2::virtio
