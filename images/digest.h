#pragma once

// OCI content digests ("sha256:<64 lowercase hex>") and a streaming sha256 hasher.

#include <openssl/evp.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace skiff::images {

inline constexpr char kSha256Prefix[] = "sha256:";
inline constexpr size_t kSha256PrefixLen = sizeof(kSha256Prefix) - 1;

// OK iff `digest` is "sha256:" followed by exactly 64 lowercase hex digits.
// Other algorithms are refused (InvalidArgument naming the digest).
absl::Status ValidateDigest(const std::string& digest);

// The hex part of a validated digest.
std::string DigestHex(const std::string& digest);

// Incremental sha256 (OpenSSL EVP).
class Sha256 {
 public:
  Sha256();
  void Update(std::string_view data);
  // "sha256:<hex>"; the hasher is reset afterwards.
  std::string Finish();

 private:
  struct CtxFree {
    void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
  };
  std::unique_ptr<EVP_MD_CTX, CtxFree> ctx_;
};

std::string Sha256Digest(std::string_view data);

}  // namespace skiff::images
