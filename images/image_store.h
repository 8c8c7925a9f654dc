#pragma once

// The node's image store: resolves references against OCI registries, fetches
// blobs into a content-addressed store (sha256-verified), unpacks each layer once
// into its own directory in overlayfs form, and records which references resolve
// to which image. Thread-safe; concurrent pulls of the same blob fetch it once.
//
// On-disk layout under `root` (e.g. /var/lib/skiff/images):
//   blobs/sha256/<hex>          verified blobs (manifests, configs, layers)
//   layers/<hex>/               unpacked layer, named by the layer's diff-id hex
//                               (or blob hex); complete only once renamed in place
//   refs.json                   reference → manifest digest, pull time

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace skiff::images {

// The image config fields an instance needs (OCI image-spec "config").
struct ImageConfig {
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::vector<std::string> env;  // "K=V"
  std::string working_dir;
  std::string user;  // "", "uid", "uid:gid", "name", "name:group"
};

struct Image {
  std::string manifest_digest;          // "sha256:<hex>"
  std::vector<std::string> references;  // normalized refs resolving to it
  ImageConfig config;
  // Unpacked layer directories, topmost first (overlayfs lowerdir order).
  std::vector<std::string> layer_dirs;
  uint64_t size_bytes = 0;  // sum of compressed layer sizes
  int64_t pulled_unix_s = 0;
};

struct PullProgress {
  std::string phase;  // "resolving", "fetching", "unpacking", "done"
  std::string manifest_digest;
  uint64_t total_bytes = 0;
  uint64_t done_bytes = 0;
  uint32_t layers_total = 0;
  uint32_t layers_done = 0;
};

struct RegistryCredentials {
  std::string username;
  std::string password;
};

struct StoreOptions {
  std::string root;
  // Registries (host[:port]) reached over plain HTTP; loopback ones are allowed here.
  std::vector<std::string> insecure_registries;
  std::string ca_file;  // extra CA bundle for TLS registries; "" = system store
  std::map<std::string, RegistryCredentials> credentials;  // by registry host[:port]
  int max_attempts = 4;  // per HTTP request, with exponential backoff
  int initial_backoff_ms = 100;
};

class ImageStore {
 public:
  static absl::StatusOr<std::unique_ptr<ImageStore>> Open(const StoreOptions& options);
  virtual ~ImageStore() = default;

  // Pulls (or finds cached) and unpacks `reference`. Errors name the reference:
  // InvalidArgument (bad reference), NotFound (unknown repository/tag/digest),
  // Unavailable (registry unreachable), DataLoss (digest mismatch after retries),
  // PermissionDenied (registry auth), FailedPrecondition (TLS verification failed).
  // A tag already pulled costs one HEAD request when it has not moved; a digest
  // reference already pulled needs no registry. `progress` may be null; it is called
  // from the calling thread or from a layer worker thread, never concurrently.
  virtual absl::StatusOr<Image> Pull(const std::string& reference,
                                     const std::function<void(const PullProgress&)>& progress) = 0;
  // Local lookup by reference or digest; NotFound if not pulled.
  virtual absl::StatusOr<Image> Get(const std::string& reference_or_digest) = 0;
  virtual std::vector<Image> List() = 0;
  // Removes the reference (or every reference of a digest) and any blobs and layer
  // dirs no other image uses. FailedPrecondition while the image is in use.
  virtual absl::Status Remove(const std::string& reference_or_digest) = 0;
  // In-use counting by running instances: Remove refuses a used image.
  virtual void AddUser(const std::string& manifest_digest) = 0;
  virtual void RemoveUser(const std::string& manifest_digest) = 0;
};

}  // namespace skiff::images
