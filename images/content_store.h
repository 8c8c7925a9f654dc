#pragma once

// Content-addressed blob store: <root>/blobs/sha256/<hex>. A blob enters the store only
// through a temp file that is hashed while written, fsynced, checked against the expected
// digest and size, and renamed into place. A stored blob is re-hashed on every Ensure()
// and Read() (so a corrupted or truncated cached blob is detected, deleted and refetched);
// the image store calls Ensure() only for blobs it is about to unpack or parse. Concurrent Ensure()
// calls for the same digest are coalesced: one fetch, the others wait for its result.

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "images/byte_sink.h"

namespace skiff::images {

class ContentStore {
 public:
  // Creates <root>/blobs/sha256 if needed and deletes stale temp files.
  static absl::StatusOr<std::unique_ptr<ContentStore>> Open(const std::string& root);

  // Streams a blob into `sink`; called (possibly several times) when the blob is missing.
  using Fetcher = std::function<absl::Status(ByteSink& sink)>;

  // Returns the path of the verified blob `digest` of `size` bytes, fetching it if it is
  // missing or corrupt. A fetched blob that does not match is refetched up to
  // `max_fetches` times, then DataLoss naming the digest.
  absl::StatusOr<std::string> Ensure(const std::string& digest, int64_t size, const Fetcher& fetch,
                                     int max_fetches = 3);
  // Stores `data` as a blob, verifying that it hashes to `digest`.
  absl::Status Put(const std::string& digest, std::string_view data);
  // Reads a stored blob of at most `max_bytes`, verifying its digest.
  absl::StatusOr<std::string> Read(const std::string& digest, size_t max_bytes);
  // Re-hashes a stored blob: OK, NotFound, or DataLoss (the corrupt blob is deleted).
  absl::Status Verify(const std::string& digest);
  bool Contains(const std::string& digest);
  absl::Status Remove(const std::string& digest);
  std::string PathOf(const std::string& digest) const;

 private:
  struct InFlight {
    bool done = false;
    absl::Status status;
  };

  explicit ContentStore(std::string dir) : dir_(std::move(dir)) {}
  absl::Status EnsureLocked(const std::string& digest, int64_t size, const Fetcher& fetch,
                            int max_fetches);
  // Hashes the stored file; deletes it when it does not match.
  absl::Status VerifyFile(const std::string& digest, int64_t expected_size);
  absl::Status FetchOnce(const std::string& digest, int64_t size, const Fetcher& fetch);
  std::string TempPath(const std::string& digest);

  const std::string dir_;  // <root>/blobs/sha256
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<InFlight>> in_flight_ ABSL_GUARDED_BY(mu_);
  uint64_t temp_counter_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace skiff::images
