#pragma once

// Image references: `[registry[:port]/]repository[:tag][@sha256:hex]`, normalized the way
// Docker does it: no registry → docker.io; a one-component docker.io repository gets the
// `library/` prefix; no tag and no digest → `latest`.

#include <string>

#include "absl/status/statusor.h"

namespace skiff::images {

inline constexpr char kDockerHub[] = "docker.io";

struct Reference {
  std::string registry;    // "docker.io", "127.0.0.1:5000", "ghcr.io"
  std::string repository;  // "library/busybox"
  std::string tag;         // "" when only a digest was given
  std::string digest;      // "" or "sha256:<hex>"

  // registry/repository[:tag][@digest]
  std::string String() const;
  // registry/repository
  std::string Name() const;
  // What the registry API is asked for: the digest if any, else the tag.
  const std::string& TagOrDigest() const { return digest.empty() ? tag : digest; }
  // The host the distribution API is reached at (docker.io → registry-1.docker.io).
  std::string ApiHost() const;
};

// Parses and normalizes; InvalidArgument naming the reference and the bad part.
absl::StatusOr<Reference> ParseReference(const std::string& text);

}  // namespace skiff::images
