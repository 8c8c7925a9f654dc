#include "images/digest.h"

#include "absl/strings/str_cat.h"

namespace skiff::images {

absl::Status ValidateDigest(const std::string& digest) {
  if (digest.size() != kSha256PrefixLen + 64 || digest.compare(0, 7, "sha256:") != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("digest \"", digest.substr(0, 100), "\": want sha256:<64 hex digits>"));
  }
  for (size_t i = kSha256PrefixLen; i < digest.size(); ++i) {
    char c = digest[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return absl::InvalidArgumentError(absl::StrCat("digest \"", digest, "\": not lowercase hex"));
    }
  }
  return absl::OkStatus();
}

std::string DigestHex(const std::string& digest) {
  return digest.size() > kSha256PrefixLen ? digest.substr(kSha256PrefixLen) : "";
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr); }

void Sha256::Update(std::string_view data) {
  EVP_DigestUpdate(ctx_.get(), data.data(), data.size());
}

std::string Sha256::Finish() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx_.get(), md, &len);
  EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(kSha256Prefix);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 0xf]);
  }
  return out;
}

std::string Sha256Digest(std::string_view data) {
  Sha256 h;
  h.Update(data);
  return h.Finish();
}

}  // namespace skiff::images
