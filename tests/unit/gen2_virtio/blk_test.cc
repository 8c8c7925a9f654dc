// virtio-blk against a temp file, driven through the virtio-mmio transport as a guest would:
// IN, OUT, FLUSH, GET_ID, the read-only refusal, and every range and shape check.

#include "sandbox/gen2/devices/virtio/blk.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>

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
using ::skiff::testing::StatusIs;

constexpr uint64_t kBase = 0x10000;
constexpr uint64_t kHeader = kBase + 0x10000;
constexpr uint64_t kStatus = kBase + 0x11000;
constexpr uint64_t kData = kBase + 0x20000;
constexpr uint64_t kSectors = 64;

uint8_t Pattern(uint64_t offset) { return static_cast<uint8_t>(offset * 7 + offset / 512); }

class BlkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char path[] = "/tmp/skiff-virtio-blk-XXXXXX";
    const int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    path_ = path;
    std::string content(kSectors * 512 + 100, '\0');  // a partial last sector: not visible
    for (size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>(Pattern(i));
    ASSERT_EQ(write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
    close(fd);
  }
  void TearDown() override { unlink(path_.c_str()); }

  void Start(bool read_only) {
    absl::StatusOr<std::shared_ptr<VirtioBlk>> blk =
        VirtioBlk::Open(path_, read_only, "skiff-disk-1");
    ASSERT_TRUE(blk.ok()) << blk.status();
    blk_ = *blk;
    transport_ = std::make_unique<MmioTransport>(guest_.memory(), blk_, &irq_);
    driver_ = std::make_unique<MmioDriver>(*transport_);
    SKIFF_ASSERT_OK(driver_->Init(~uint64_t{0}, {queue_.config()}));
  }

  // Submits one request and returns {status byte, used length}.
  std::pair<uint8_t, uint32_t> Request(uint32_t type, uint64_t sector, std::vector<Buf> data,
                                       uint32_t status_len = 1) {
    guest_.Put<uint32_t>(kHeader, type);
    guest_.Put<uint32_t>(kHeader + 4, 0);
    guest_.Put<uint64_t>(kHeader + 8, sector);
    guest_.Put<uint8_t>(kStatus + status_len - 1, 0xee);
    std::vector<Buf> chain = {{kHeader, 16}};
    chain.insert(chain.end(), data.begin(), data.end());
    chain.push_back({kStatus, status_len, true});
    const uint16_t used_before = queue_.UsedIdx();
    const uint16_t head = queue_.Add(chain);
    driver_->Notify(0);
    EXPECT_EQ(queue_.UsedIdx(), static_cast<uint16_t>(used_before + 1));
    auto [id, len] = queue_.Used(used_before);
    EXPECT_EQ(id, head);
    return {guest_.Get<uint8_t>(kStatus + status_len - 1), len};
  }

  std::string FileBytes(uint64_t offset, size_t len) {
    std::string s(len, '\0');
    const int fd = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_EQ(pread(fd, s.data(), len, static_cast<off_t>(offset)), static_cast<ssize_t>(len));
    close(fd);
    return s;
  }

  std::string path_;
  FakeGuest guest_{1 << 20, kBase};
  DriverQueue queue_{guest_, 128, kBase, kBase + 0x1000, kBase + 0x2000};
  CountingInterrupt irq_;
  std::shared_ptr<VirtioBlk> blk_;
  std::unique_ptr<MmioTransport> transport_;
  std::unique_ptr<MmioDriver> driver_;
};

TEST_F(BlkTest, FeaturesAndCapacity) {
  Start(true);
  EXPECT_EQ(driver_->Read32(mmio::kRegDeviceId), kDeviceIdBlock);
  const uint64_t f = driver_->DeviceFeatures();
  EXPECT_NE(f & FeatureBit(blk::kFRo), 0u);
  EXPECT_NE(f & FeatureBit(blk::kFFlush), 0u);
  EXPECT_NE(f & FeatureBit(kFVersion1), 0u);
  uint64_t capacity = 0;
  transport_->Read(mmio::kConfigSpace,
                   std::span<uint8_t>(reinterpret_cast<uint8_t*>(&capacity), 8));
  EXPECT_EQ(capacity, kSectors);
  EXPECT_NE(f & FeatureBit(blk::kFSegMax), 0u);
  EXPECT_EQ(driver_->Read32(mmio::kConfigSpace + 12), VirtioBlk::kSegMax);
}

TEST_F(BlkTest, ReadWritableDiskOffersNoRo) {
  Start(false);
  EXPECT_EQ(driver_->DeviceFeatures() & FeatureBit(blk::kFRo), 0u);
}

TEST_F(BlkTest, ReadSectorsAcrossBuffers) {
  Start(true);
  // Three sectors from sector 5 into two buffers split mid-sector.
  auto [status, len] = Request(blk::kTIn, 5, {{kData, 700, true}, {kData + 0x1000, 836, true}});
  EXPECT_EQ(status, blk::kSOk);
  EXPECT_EQ(len, 3 * 512 + 1u);
  for (uint64_t i = 0; i < 3 * 512; ++i) {
    const uint64_t gpa = i < 700 ? kData + i : kData + 0x1000 + (i - 700);
    ASSERT_EQ(guest_.Get<uint8_t>(gpa), Pattern(5 * 512 + i)) << "byte " << i;
  }
  EXPECT_GE(irq_.count(), 1);
  EXPECT_EQ(driver_->AckInterrupts(), mmio::kInterruptUsedBuffer);
}

TEST_F(BlkTest, WriteThenReadBackAndFlush) {
  Start(false);
  for (int i = 0; i < 1024; ++i) guest_.Put<uint8_t>(kData + i, static_cast<uint8_t>(0xa0 ^ i));
  auto [status, len] = Request(blk::kTOut, kSectors - 2, {{kData, 1024}});
  EXPECT_EQ(status, blk::kSOk);
  EXPECT_EQ(len, 1u) << "only the status byte was written into the chain";
  const std::string disk = FileBytes((kSectors - 2) * 512, 1024);
  for (int i = 0; i < 1024; ++i) {
    ASSERT_EQ(static_cast<uint8_t>(disk[i]), static_cast<uint8_t>(0xa0 ^ i)) << i;
  }
  EXPECT_EQ(FileBytes(kSectors * 512, 1)[0], static_cast<char>(Pattern(kSectors * 512)))
      << "the partial tail is untouched";
  EXPECT_EQ(Request(blk::kTFlush, 0, {}).first, blk::kSOk);
}

TEST_F(BlkTest, GetId) {
  Start(true);
  auto [status, len] = Request(blk::kTGetId, 0, {{kData, 20, true}});
  EXPECT_EQ(status, blk::kSOk);
  EXPECT_EQ(len, 21u);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(guest_.At(kData))), "skiff-disk-1");
  // A short buffer gets what fits.
  std::tie(status, len) = Request(blk::kTGetId, 0, {{kData + 100, 5, true}});
  EXPECT_EQ(len, 6u);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(guest_.At(kData + 100)), 5), "skiff");
}

TEST_F(BlkTest, ReadOnlyDiskRefusesWrites) {
  Start(true);
  const std::string before = FileBytes(0, 512);
  EXPECT_EQ(Request(blk::kTOut, 0, {{kData, 512}}).first, blk::kSIoErr);
  EXPECT_EQ(FileBytes(0, 512), before);
  EXPECT_EQ(Request(blk::kTFlush, 0, {}).first, blk::kSOk);
  EXPECT_FALSE(transport_->broken());
}

TEST_F(BlkTest, OutOfRangeAndMisshapenRequests) {
  Start(false);
  const std::string before = FileBytes(0, kSectors * 512);
  // Reads and writes that end past the last sector, start past it, or overflow.
  EXPECT_EQ(Request(blk::kTIn, kSectors - 1, {{kData, 1024, true}}).first, blk::kSIoErr);
  EXPECT_EQ(Request(blk::kTIn, kSectors, {{kData, 512, true}}).first, blk::kSIoErr);
  EXPECT_EQ(Request(blk::kTOut, kSectors - 1, {{kData, 1024}}).first, blk::kSIoErr);
  EXPECT_EQ(Request(blk::kTOut, ~uint64_t{0} >> 9, {{kData, 512}}).first, blk::kSIoErr);
  EXPECT_EQ(Request(blk::kTOut, ~uint64_t{0}, {{kData, 512}}).first, blk::kSIoErr);
  // Not a whole number of sectors.
  EXPECT_EQ(Request(blk::kTOut, 0, {{kData, 100}}).first, blk::kSIoErr);
  EXPECT_EQ(Request(blk::kTIn, 0, {{kData, 513, true}}).first, blk::kSIoErr);
  // Unknown type.
  EXPECT_EQ(Request(77, 0, {}).first, blk::kSUnsupp);
  // The status byte is the last writable byte, whatever the buffer's length.
  auto [status, len] = Request(blk::kTIn, 1, {{kData, 512, true}}, 4);
  EXPECT_EQ(status, blk::kSIoErr) << "3 stray bytes make the data 515 bytes";
  EXPECT_EQ(FileBytes(0, kSectors * 512), before);
  EXPECT_FALSE(transport_->broken()) << "bad requests are the guest's problem, not a broken queue";
}

TEST_F(BlkTest, ChainWithoutHeaderOrStatusIsReturnedUntouched) {
  Start(false);
  queue_.Add({{kHeader, 8}, {kStatus, 1, true}});  // header too short
  queue_.Add({{kHeader, 16}, {kData, 512}});       // no status byte
  driver_->Notify(0);
  EXPECT_EQ(queue_.UsedIdx(), 2);
  EXPECT_EQ(queue_.Used(0).second, 0u);
  EXPECT_EQ(queue_.Used(1).second, 0u);
  EXPECT_FALSE(transport_->broken());
}

TEST_F(BlkTest, ManyRequestsInOneNotify) {
  Start(true);
  for (int i = 0; i < 10; ++i) {
    guest_.Put<uint32_t>(kHeader + 32 * i, blk::kTIn);
    guest_.Put<uint64_t>(kHeader + 32 * i + 8, i);
    queue_.Add({{kHeader + 32 * i, 16}, {kData + 512 * i, 512, true}, {kStatus + i, 1, true}});
  }
  const int irqs = irq_.count();
  driver_->Notify(0);
  EXPECT_EQ(queue_.UsedIdx(), 10);
  EXPECT_EQ(irq_.count(), irqs + 1) << "one interrupt for the batch";
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(guest_.Get<uint8_t>(kStatus + i), blk::kSOk);
    EXPECT_EQ(guest_.Get<uint8_t>(kData + 512 * i + 3), Pattern(512 * i + 3));
  }
}

TEST(BlkOpenTest, Errors) {
  EXPECT_THAT(VirtioBlk::Open("/nonexistent/disk", true, "x"),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(VirtioBlk::Open("/tmp", true, "x"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(VirtioBlk::Open("/dev/null", true, std::string(21, 'a')),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace skiff::gen2::virtio
