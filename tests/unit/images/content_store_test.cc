#include "images/content_store.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "images/digest.h"
#include "images/fs_ops.h"
#include "sandbox/common/status.h"
#include "tests/support/status_matchers.h"

namespace skiff::images {
namespace {

using ::skiff::testing::StatusIs;
using ::testing::HasSubstr;

class ContentStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/skiff-cs-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    SKIFF_ASSERT_OK_AND_ASSIGN(store_, ContentStore::Open(root_));
  }
  void TearDown() override { SKIFF_EXPECT_OK(RemoveTree(root_)); }

  // A fetcher that serves `data` and counts its calls.
  ContentStore::Fetcher Serve(const std::string& data, std::atomic<int>* calls, int delay_ms = 0) {
    return [data, calls, delay_ms](ByteSink& sink) {
      ++*calls;
      if (delay_ms) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
      SKIFF_RETURN_IF_ERROR(sink.Restart());
      return sink.Write(data);
    };
  }

  static std::string ReadFile(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }

  std::string root_;
  std::unique_ptr<ContentStore> store_;
};

TEST_F(ContentStoreTest, FetchesVerifiesAndStoresOnce) {
  const std::string data(100000, 'x');
  const std::string digest = Sha256Digest(data);
  std::atomic<int> calls = 0;
  SKIFF_ASSERT_OK_AND_ASSIGN(std::string path,
                             store_->Ensure(digest, data.size(), Serve(data, &calls)));
  EXPECT_EQ(path, root_ + "/blobs/sha256/" + DigestHex(digest));
  EXPECT_EQ(ReadFile(path), data);
  SKIFF_ASSERT_OK(store_->Ensure(digest, data.size(), Serve(data, &calls)));
  EXPECT_EQ(calls, 1);
  SKIFF_ASSERT_OK_AND_ASSIGN(std::string read, store_->Read(digest, 1 << 20));
  EXPECT_EQ(read, data);
}

TEST_F(ContentStoreTest, MismatchIsRefetchedThenDataLoss) {
  const std::string digest = Sha256Digest("good");
  std::atomic<int> calls = 0;
  EXPECT_THAT(store_->Ensure(digest, 4, Serve("evil", &calls), 3),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr(digest)));
  EXPECT_EQ(calls, 3);
  EXPECT_FALSE(store_->Contains(digest));
  // Truncated and oversized deliveries.
  EXPECT_THAT(store_->Ensure(digest, 4, Serve("goo", &calls), 1),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("got 3 bytes")));
  EXPECT_THAT(store_->Ensure(digest, 4, Serve("goodgood", &calls), 1),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("more than the declared 4")));
  // A flaky source that is right the second time.
  int n = 0;
  SKIFF_ASSERT_OK(store_->Ensure(digest, 4, [&](ByteSink& sink) {
    SKIFF_RETURN_IF_ERROR(sink.Restart());
    return sink.Write(++n == 1 ? "bad!" : "good");
  }));
  EXPECT_EQ(n, 2);
  // No temp files are left behind.
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(root_ + "/blobs/sha256")) {
    EXPECT_EQ(e.path().filename().string(), DigestHex(digest));
    ++entries;
  }
  EXPECT_EQ(entries, 1);
}

TEST_F(ContentStoreTest, CorruptedStoredBlobIsDetectedAndRefetched) {
  const std::string data = "layer bytes of some length";
  const std::string digest = Sha256Digest(data);
  std::atomic<int> calls = 0;
  SKIFF_ASSERT_OK_AND_ASSIGN(std::string path,
                             store_->Ensure(digest, data.size(), Serve(data, &calls)));
  // Same size, different content (mtime changes).
  {
    std::string bad = data;
    bad[3] ^= 1;
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bad;
  }
  SKIFF_ASSERT_OK(store_->Ensure(digest, data.size(), Serve(data, &calls)));
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(ReadFile(path), data);
  // Truncated on disk, detected by a fresh store (a restarted agent) on first use.
  ASSERT_EQ(truncate(path.c_str(), 5), 0);
  SKIFF_ASSERT_OK_AND_ASSIGN(auto reopened, ContentStore::Open(root_));
  SKIFF_ASSERT_OK(reopened->Ensure(digest, data.size(), Serve(data, &calls)));
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(ReadFile(path), data);
  // Explicit verification reports DataLoss and deletes the bad copy.
  std::ofstream(path, std::ios::binary | std::ios::trunc) << "garbage";
  EXPECT_THAT(reopened->Verify(digest), StatusIs(absl::StatusCode::kDataLoss, HasSubstr(digest)));
  EXPECT_FALSE(reopened->Contains(digest));
  // Read() of a corrupt blob fails too.
  SKIFF_ASSERT_OK(reopened->Put(digest, data));
  std::ofstream(path, std::ios::binary | std::ios::trunc) << "garbage";
  EXPECT_THAT(reopened->Read(digest, 1000), StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(ContentStoreTest, ConcurrentEnsuresAreCoalesced) {
  const std::string data(1 << 20, 'z');
  const std::string digest = Sha256Digest(data);
  std::atomic<int> calls = 0;
  auto fetch = Serve(data, &calls, 200);
  std::vector<std::thread> threads;
  std::atomic<int> ok = 0;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      if (store_->Ensure(digest, data.size(), fetch).ok()) ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok, 8);
  EXPECT_EQ(calls, 1);
  // A failing fetch is reported to every waiter, and a later call tries again.
  const std::string other = Sha256Digest("other");
  // The fetch is held until every thread has started and had time to queue behind it,
  // so the count does not depend on scheduling on a loaded machine.
  std::atomic<int> failing_calls = 0, started = 0;
  std::atomic<bool> release = false;
  auto failing = [&](ByteSink&) {
    ++failing_calls;
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return absl::UnavailableError("registry down");
  };
  threads.clear();
  std::atomic<int> unavailable = 0;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      ++started;
      if (store_->Ensure(other, 5, failing).status().code() == absl::StatusCode::kUnavailable) {
        ++unavailable;
      }
    });
  }
  while (started < 4) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  release = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(unavailable, 4);
  EXPECT_EQ(failing_calls, 1);
  release = true;
  EXPECT_THAT(store_->Ensure(other, 5, failing), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(failing_calls, 2);
}

TEST_F(ContentStoreTest, RefusesBadDigests) {
  std::atomic<int> calls = 0;
  EXPECT_THAT(store_->Ensure("sha256:../../etc/passwd", 1, Serve("x", &calls)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("digest")));
  EXPECT_THAT(store_->Put("md5:abc", "x"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(calls, 0);
}

}  // namespace
}  // namespace skiff::images
