// The split virtqueue over fake guest memory: good chains (direct and indirect) come out
// validated, and every malformed shape a hostile driver can write is an error; through the
// transport and virtio-blk, each one breaks the device (DEVICE_NEEDS_RESET, a config-change
// interrupt) and later notifications are ignored.

#include "sandbox/gen2/devices/virtio/queue.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <functional>
#include <string>

#include "sandbox/gen2/devices/virtio/blk.h"
#include "sandbox/gen2/devices/virtio/mmio_transport.h"
#include "sandbox/gen2/devices/virtio/virtio.h"
#include "tests/support/status_matchers.h"
#include "tests/unit/gen2_virtio/virtio_test_driver.h"

namespace skiff::gen2::virtio {
namespace {

using ::skiff::gen2::virtio::testing::Buf;
using ::skiff::gen2::virtio::testing::CountingInterrupt;
using ::skiff::gen2::virtio::testing::DriverQueue;
using ::skiff::gen2::virtio::testing::FakeGuest;
using ::skiff::gen2::virtio::testing::MmioDriver;
using ::skiff::testing::IsOk;
using ::skiff::testing::StatusIs;
using ::testing::HasSubstr;

constexpr uint16_t kSize = 16;
constexpr uint64_t kBase = 0x10000;
constexpr uint64_t kDesc = kBase;
constexpr uint64_t kAvail = kBase + 0x1000;
constexpr uint64_t kUsed = kBase + 0x2000;
constexpr uint64_t kData = kBase + 0x10000;
constexpr uint64_t kTable = kBase + 0x8000;  // indirect tables
constexpr uint64_t kIndirect = FeatureBit(kFRingIndirectDesc);

class QueueTest : public ::testing::Test {
 protected:
  QueueTest() : guest_(1 << 20, kBase), driver_(guest_, kSize, kDesc, kAvail, kUsed) {}

  absl::StatusOr<Queue> MakeQueue(uint64_t features = kIndirect) {
    return Queue::Create(guest_.memory(), 0, driver_.config(), 256, features);
  }

  FakeGuest guest_;
  DriverQueue driver_;
};

TEST_F(QueueTest, GoodChainComesOutValidated) {
  SKIFF_ASSERT_OK_AND_ASSIGN(Queue q, MakeQueue());
  SKIFF_ASSERT_OK_AND_ASSIGN(std::optional<DescriptorChain> none, q.Pop());
  EXPECT_FALSE(none.has_value());

  std::memcpy(guest_.At(kData), "hello", 5);
  const uint16_t head = driver_.Add({{kData, 5}, {kData + 0x100, 3}, {kData + 0x200, 100, true}});
  SKIFF_ASSERT_OK_AND_ASSIGN(std::optional<DescriptorChain> c, q.Pop());
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->head, head);
  ASSERT_EQ(c->buffers.size(), 3u);
  EXPECT_EQ(c->readable_bytes, 8u);
  EXPECT_EQ(c->writable_bytes, 100u);
  EXPECT_EQ(c->buffers[0].data.data(), guest_.At(kData));
  EXPECT_TRUE(c->buffers[2].device_writable);
  char got[5];
  EXPECT_EQ(c->ReadFrom(0, std::span<uint8_t>(reinterpret_cast<uint8_t*>(got), 5)), 5u);
  EXPECT_EQ(std::string(got, 5), "hello");
  // Reads and writes cross buffer boundaries.
  const uint8_t reply[] = {1, 2, 3, 4};
  EXPECT_EQ(c->WriteTo(98, reply), 2u);
  EXPECT_EQ(guest_.At(kData + 0x200)[99], 2);

  q.AddUsed(c->head, 42);
  EXPECT_EQ(driver_.UsedIdx(), 1);
  EXPECT_EQ(driver_.Used(0), std::make_pair(uint32_t{head}, uint32_t{42}));
  EXPECT_TRUE(q.NeedsInterrupt());
  EXPECT_FALSE(q.NeedsInterrupt()) << "nothing used since the last check";
  SKIFF_ASSERT_OK_AND_ASSIGN(none, q.Pop());
  EXPECT_FALSE(none.has_value());
}

TEST_F(QueueTest, IndirectChain) {
  SKIFF_ASSERT_OK_AND_ASSIGN(Queue q, MakeQueue());
  const uint16_t head =
      driver_.WriteIndirectChain(kTable, {{kData, 16}, {kData + 0x100, 512, true}});
  driver_.Publish(head);
  SKIFF_ASSERT_OK_AND_ASSIGN(std::optional<DescriptorChain> c, q.Pop());
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->head, head);
  EXPECT_EQ(c->readable_bytes, 16u);
  EXPECT_EQ(c->writable_bytes, 512u);
}

TEST_F(QueueTest, WrapsAroundTheRingAndUndoPop) {
  SKIFF_ASSERT_OK_AND_ASSIGN(Queue q, MakeQueue());
  for (int round = 0; round < 3 * kSize + 5; ++round) {
    const uint16_t head = driver_.Add({{kData, 1}});
    SKIFF_ASSERT_OK_AND_ASSIGN(bool available, q.HasAvailable());
    EXPECT_TRUE(available);
    SKIFF_ASSERT_OK_AND_ASSIGN(std::optional<DescriptorChain> c, q.Pop());
    ASSERT_TRUE(c.has_value());
    q.UndoPop();
    SKIFF_ASSERT_OK_AND_ASSIGN(c, q.Pop());
    ASSERT_TRUE(c.has_value());
    EXPECT_EQ(c->head, head);
    q.AddUsed(c->head, 0);
  }
  EXPECT_EQ(driver_.UsedIdx(), 3 * kSize + 5);
}

TEST_F(QueueTest, NoInterruptFlagIsHonoured) {
  SKIFF_ASSERT_OK_AND_ASSIGN(Queue q, MakeQueue());
  driver_.SetAvailFlags(kAvailFNoInterrupt);
  driver_.Add({{kData, 1}});
  SKIFF_ASSERT_OK_AND_ASSIGN(std::optional<DescriptorChain> c, q.Pop());
  ASSERT_TRUE(c.has_value());
  q.AddUsed(c->head, 0);
  EXPECT_FALSE(q.NeedsInterrupt());
}

TEST_F(QueueTest, EventIdxFollowsUsedEvent) {
  SKIFF_ASSERT_OK_AND_ASSIGN(Queue q, MakeQueue(kIndirect | FeatureBit(kFRingEventIdx)));
  const uint64_t used_event = kAvail + 4 + 2 * kSize;
  driver_.SetAvailFlags(kAvailFNoInterrupt);  // ignored with EVENT_IDX
  auto use_one = [&] {
    driver_.Add({{kData, 1}});
    absl::StatusOr<std::optional<DescriptorChain>> c = q.Pop();
    ASSERT_TRUE(c.ok() && c->has_value());
    q.AddUsed((*c)->head, 0);
  };
  guest_.Put<uint16_t>(used_event, 0);  // interrupt when used idx passes 0
  use_one();
  EXPECT_TRUE(q.NeedsInterrupt());  // used idx 0 → 1
  use_one();
  EXPECT_FALSE(q.NeedsInterrupt()) << "used_event 0 was already passed";
  guest_.Put<uint16_t>(used_event, 3);  // the driver wants one once entry 3 is used
  use_one();
  EXPECT_FALSE(q.NeedsInterrupt());  // used idx 3
  use_one();
  EXPECT_TRUE(q.NeedsInterrupt());  // used idx 4: entry 3 used
  // Batches: one interrupt if used_event lies anywhere inside the batch.
  guest_.Put<uint16_t>(used_event, 5);
  use_one();
  use_one();
  use_one();
  EXPECT_TRUE(q.NeedsInterrupt());
}

TEST_F(QueueTest, EventIdxPopAsksForTheNextNotification) {
  SKIFF_ASSERT_OK_AND_ASSIGN(Queue q, MakeQueue(FeatureBit(kFRingEventIdx)));
  const uint64_t avail_event = kUsed + 4 + 8 * kSize;
  guest_.Put<uint16_t>(avail_event, 0xabcd);
  for (int i = 0; i < 3; ++i) driver_.Add({{kData, 1}});
  for (int i = 0; i < 3; ++i) {
    SKIFF_ASSERT_OK_AND_ASSIGN(std::optional<DescriptorChain> c, q.Pop());
    ASSERT_TRUE(c.has_value());
  }
  EXPECT_EQ(guest_.Get<uint16_t>(avail_event), 0xabcd) << "untouched while chains remain";
  SKIFF_ASSERT_OK_AND_ASSIGN(std::optional<DescriptorChain> none, q.Pop());
  EXPECT_FALSE(none.has_value());
  EXPECT_EQ(guest_.Get<uint16_t>(avail_event), 3) << "notify me when index 3 is made available";
}

TEST_F(QueueTest, FullQueueIsNotMalformed) {
  SKIFF_ASSERT_OK_AND_ASSIGN(Queue q, MakeQueue());
  for (int i = 0; i < kSize; ++i) driver_.Add({{kData, 1}});
  for (int i = 0; i < kSize; ++i) {
    SKIFF_ASSERT_OK_AND_ASSIGN(std::optional<DescriptorChain> c, q.Pop());
    EXPECT_TRUE(c.has_value());
  }
}

// Configurations the queue refuses at DRIVER_OK.
TEST_F(QueueTest, BadConfigurations) {
  struct Case {
    const char* what;
    QueueConfig config;
    const char* message;
  } cases[] = {
      {"not ready", {kSize, false, kDesc, kAvail, kUsed}, "not ready"},
      {"size 0", {0, true, kDesc, kAvail, kUsed}, "power of two"},
      {"size 12", {12, true, kDesc, kAvail, kUsed}, "power of two"},
      {"size above max", {512, true, kDesc, kAvail, kUsed}, "power of two"},
      {"descriptor table unaligned", {kSize, true, kDesc + 8, kAvail, kUsed}, "aligned"},
      {"available ring unaligned", {kSize, true, kDesc, kAvail + 1, kUsed}, "aligned"},
      {"used ring unaligned", {kSize, true, kDesc, kAvail, kUsed + 2}, "aligned"},
      {"descriptor table outside", {kSize, true, kBase - 0x1000, kAvail, kUsed}, "not inside"},
      {"used ring straddles the end",
       {kSize, true, kDesc, kAvail, kBase + (1 << 20) - 16},
       "not inside"},
      {"available ring wraps", {kSize, true, kDesc, 0xfffffffffffffff0, kUsed}, "not inside"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(Queue::Create(guest_.memory(), 3, c.config, 256, kIndirect),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)))
        << c.what;
  }
}

// A malformed queue as the driver leaves it; `setup` writes it into guest memory.
struct MalformedCase {
  const char* name;
  std::function<void(DriverQueue&, FakeGuest&)> setup;
  const char* message;
  uint64_t features = kIndirect;
};

std::vector<MalformedCase> MalformedCases() {
  return {
      {"HeadOutOfRange", [](DriverQueue& d, FakeGuest&) { d.Publish(kSize); }, "head 16"},
      {"NextOutOfRange",
       [](DriverQueue& d, FakeGuest&) {
         d.SetDesc(0, kData, 16, kDescFNext, 99);
         d.Publish(0);
       },
       "next 99"},
      {"SelfLoop",
       [](DriverQueue& d, FakeGuest&) {
         d.SetDesc(0, kData, 16, kDescFNext, 0);
         d.Publish(0);
       },
       "a loop"},
      {"TwoDescriptorLoop",
       [](DriverQueue& d, FakeGuest&) {
         d.SetDesc(0, kData, 16, kDescFNext, 1);
         d.SetDesc(1, kData, 16, kDescFNext, 0);
         d.Publish(0);
       },
       "a loop"},
      {"ChainLongerThanQueue",
       [](DriverQueue& d, FakeGuest&) {
         // Every descriptor chained to the next, the last back to the first: 17 hops > 16.
         for (uint16_t i = 0; i < kSize; ++i) {
           d.SetDesc(i, kData, 16, kDescFNext, static_cast<uint16_t>((i + 1) % kSize));
         }
         d.Publish(5);
       },
       "longer than the queue size"},
      {"BufferOutsideMemory",
       [](DriverQueue& d, FakeGuest& g) {
         d.Add({{g.end(), 16}});
       },
       "not inside guest memory"},
      {"BufferStraddlesEnd",
       [](DriverQueue& d, FakeGuest& g) {
         d.Add({{g.end() - 8, 16}});
       },
       "not inside guest memory"},
      {"BufferBelowMemory",
       [](DriverQueue& d, FakeGuest&) {
         d.Add({{kBase - 16, 16}});
       },
       "not inside guest memory"},
      {"GpaPlusLenOverflows",
       [](DriverQueue& d, FakeGuest&) {
         d.Add({{0xfffffffffffff000, 0x2000}});
       },
       "not inside guest memory"},
      {"AvailIdxJumps", [](DriverQueue& d, FakeGuest&) { d.SetAvailIdx(kSize + 1); },
       "ahead of the last seen"},
      {"AvailIdxGoesBackwards", [](DriverQueue& d, FakeGuest&) { d.SetAvailIdx(0xffff); },
       "ahead of the last seen"},
      {"ReadableAfterWritable",
       [](DriverQueue& d, FakeGuest&) {
         d.Add({{kData, 16, true}, {kData, 16}});
       },
       "readable buffer after a writable"},
      {"NestedIndirect",
       [](DriverQueue& d, FakeGuest& g) {
         const uint16_t head = d.WriteIndirectChain(kTable, {{kData, 16}, {kData, 16}});
         g.Put<uint16_t>(kTable + 16 + 12, kDescFIndirect);
         d.Publish(head);
       },
       "nested indirect"},
      {"IndirectTableOutsideMemory",
       [](DriverQueue& d, FakeGuest& g) {
         d.SetDesc(0, g.end() - 16, 32, kDescFIndirect, 0);
         d.Publish(0);
       },
       "indirect table"},
      {"IndirectTableOverflows",
       [](DriverQueue& d, FakeGuest&) {
         d.SetDesc(0, 0xfffffffffffffff0, 32, kDescFIndirect, 0);
         d.Publish(0);
       },
       "indirect table"},
      {"ZeroLengthIndirect",
       [](DriverQueue& d, FakeGuest&) {
         d.SetDesc(0, kTable, 0, kDescFIndirect, 0);
         d.Publish(0);
       },
       "indirect table length 0"},
      {"IndirectLengthNotMultipleOf16",
       [](DriverQueue& d, FakeGuest&) {
         d.SetDesc(0, kTable, 24, kDescFIndirect, 0);
         d.Publish(0);
       },
       "indirect table length 24"},
      {"IndirectTableTooLong",
       [](DriverQueue& d, FakeGuest&) {
         d.SetDesc(0, kTable, 16 * (Queue::kMaxIndirectDescriptors + 1), kDescFIndirect, 0);
         d.Publish(0);
       },
       "indirect table length"},
      {"IndirectWithNext",
       [](DriverQueue& d, FakeGuest&) {
         d.SetDesc(0, kTable, 32, kDescFIndirect | kDescFNext, 1);
         d.Publish(0);
       },
       "indirect descriptor with NEXT"},
      {"IndirectLoop",
       [](DriverQueue& d, FakeGuest& g) {
         const uint16_t head = d.WriteIndirectChain(kTable, {{kData, 16}, {kData, 16}});
         g.Put<uint16_t>(kTable + 16 + 12, kDescFNext);
         g.Put<uint16_t>(kTable + 16 + 14, 0);  // entry 1 → entry 0 → entry 1 ...
         d.Publish(head);
       },
       "a loop"},
      {"IndirectNextOutOfTable",
       [](DriverQueue& d, FakeGuest& g) {
         const uint16_t head = d.WriteIndirectChain(kTable, {{kData, 16}, {kData, 16}});
         g.Put<uint16_t>(kTable + 14, 7);
         d.Publish(head);
       },
       "indirect next 7"},
      {"IndirectBufferOutsideMemory",
       [](DriverQueue& d, FakeGuest& g) {
         d.Publish(d.WriteIndirectChain(kTable, {{kData, 16}, {g.end(), 1, true}}));
       },
       "not inside guest memory"},
      {"IndirectNotNegotiated",
       [](DriverQueue& d, FakeGuest&) {
         d.Publish(d.WriteIndirectChain(kTable, {{kData, 16}, {kData, 1, true}}));
       },
       "without VIRTIO_RING_F_INDIRECT_DESC", 0},
  };
}

class MalformedQueueTest : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(MalformedQueueTest, QueueReturnsAnError) {
  FakeGuest guest(1 << 20, kBase);
  DriverQueue driver(guest, kSize, kDesc, kAvail, kUsed);
  SKIFF_ASSERT_OK_AND_ASSIGN(
      Queue q, Queue::Create(guest.memory(), 0, driver.config(), 256, GetParam().features));
  GetParam().setup(driver, guest);
  EXPECT_THAT(q.Pop(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(GetParam().message)));
}

// Through the transport and a real device: the device is marked broken, the driver is told,
// and the device touches the queue no more.
TEST_P(MalformedQueueTest, DeviceIsMarkedBrokenAndIgnoresLaterNotifies) {
  char path[] = "/tmp/skiff-virtio-blk-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  unlink(path);
  ASSERT_EQ(ftruncate(fd, 64 * 512), 0);
  SKIFF_ASSERT_OK_AND_ASSIGN(auto blk, VirtioBlk::Create(UniqueFd(fd), false, "disk"));
  FakeGuest guest(1 << 20, kBase);
  DriverQueue driver(guest, kSize, kDesc, kAvail, kUsed);
  CountingInterrupt irq;
  MmioTransport transport(guest.memory(), blk, &irq);
  MmioDriver mmio(transport);
  const uint64_t wanted = FeatureBit(kFVersion1) | GetParam().features;
  SKIFF_ASSERT_OK(mmio.Init(wanted, {driver.config()}));

  GetParam().setup(driver, guest);
  mmio.Notify(0);
  EXPECT_NE(mmio.Status() & kStatusDeviceNeedsReset, 0u);
  EXPECT_TRUE(transport.broken());
  EXPECT_EQ(irq.count(), 1);
  EXPECT_EQ(mmio.Read32(mmio::kRegInterruptStatus), mmio::kInterruptConfigChange);
  EXPECT_EQ(driver.UsedIdx(), 0);

  // A well-formed request now: ignored, the device stays broken.
  guest.Put<uint32_t>(kData + 0x1000, blk::kTOut);
  guest.Put<uint64_t>(kData + 0x1008, 0);
  DriverQueue fresh(guest, kSize, kDesc + 0x4000, kAvail + 0x4000, kUsed + 0x4000);
  fresh.Add({{kData + 0x1000, 16}, {kData, 512}, {kData + 0x2000, 1, true}});
  mmio.Notify(0);
  EXPECT_EQ(fresh.UsedIdx(), 0);
  EXPECT_EQ(driver.UsedIdx(), 0);
  EXPECT_EQ(irq.count(), 1);

  // A reset and a fresh initialization bring it back.
  mmio.SetStatus(0);
  EXPECT_EQ(mmio.Status(), 0u);
  SKIFF_ASSERT_OK(mmio.Init(wanted, {fresh.config()}));
  mmio.Notify(0);
  EXPECT_EQ(fresh.UsedIdx(), 1);
  EXPECT_EQ(guest.Get<uint8_t>(kData + 0x2000), blk::kSOk);
}

INSTANTIATE_TEST_SUITE_P(AllCases, MalformedQueueTest, ::testing::ValuesIn(MalformedCases()),
                         [](const ::testing::TestParamInfo<MalformedCase>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace skiff::gen2::virtio
