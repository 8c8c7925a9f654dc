#pragma once

// OCI / Docker v2 manifests, image indexes (manifest lists) and image configs. All input
// is hostile: size-capped, parsed with nlohmann-json (exceptions caught here), every
// field type- and range-checked. Errors are InvalidArgument naming the document and field.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "images/image_store.h"

namespace skiff::images {

inline constexpr char kOciManifest[] = "application/vnd.oci.image.manifest.v1+json";
inline constexpr char kOciIndex[] = "application/vnd.oci.image.index.v1+json";
inline constexpr char kDockerManifest[] = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr char kDockerManifestList[] =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr char kOciConfig[] = "application/vnd.oci.image.config.v1+json";
inline constexpr char kDockerConfig[] = "application/vnd.docker.container.image.v1+json";

inline constexpr size_t kMaxManifestBytes = 4 << 20;
inline constexpr size_t kMaxConfigBytes = 8 << 20;
inline constexpr size_t kMaxLayers = 256;

enum class LayerCompression { kNone, kGzip, kZstd };

struct Descriptor {
  std::string media_type;
  std::string digest;
  int64_t size = 0;
  // Index entries only.
  std::string os;
  std::string architecture;
  std::string variant;
};

struct Manifest {
  std::string media_type;
  Descriptor config;
  std::vector<Descriptor> layers;
};

struct Index {
  std::string media_type;
  std::vector<Descriptor> manifests;
};

struct ParsedConfig {
  std::string os;
  std::string architecture;
  ImageConfig config;
  std::vector<std::string> diff_ids;
};

// True for index / manifest-list media types.
bool IsIndexMediaType(const std::string& media_type);

// The effective media type of a manifest document: `content_type` (HTTP header) unless
// empty or generic, else the document's own "mediaType"; schema 1 is refused.
absl::StatusOr<std::string> DetectMediaType(const std::string& body,
                                            const std::string& content_type);

absl::StatusOr<Manifest> ParseManifest(const std::string& body, const std::string& media_type);
absl::StatusOr<Index> ParseIndex(const std::string& body, const std::string& media_type);
// The entry for os/architecture (linux/amd64 by default); NotFound listing what is there.
absl::StatusOr<Descriptor> SelectPlatform(const Index& index, const std::string& os = "linux",
                                          const std::string& architecture = "amd64");
absl::StatusOr<ParsedConfig> ParseImageConfig(const std::string& body);

// The compression of a layer media type; InvalidArgument for unknown ones.
absl::StatusOr<LayerCompression> LayerCompressionOf(const std::string& media_type);

}  // namespace skiff::images
