#include "images/reference.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "images/digest.h"

namespace skiff::images {
namespace {

constexpr size_t kMaxReferenceLength = 512;
constexpr size_t kMaxNameLength = 255;
constexpr size_t kMaxTagLength = 128;

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsAlnum(char c) { return IsLowerAlnum(c) || (c >= 'A' && c <= 'Z'); }

// path-component: [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*
bool ValidPathComponent(const std::string& c) {
  if (c.empty() || !IsLowerAlnum(c.front()) || !IsLowerAlnum(c.back())) return false;
  size_t i = 0;
  while (i < c.size()) {
    if (IsLowerAlnum(c[i])) {
      ++i;
      continue;
    }
    // A separator run, followed by an alnum (guaranteed by the back() check).
    size_t j = i;
    while (j < c.size() && !IsLowerAlnum(c[j])) ++j;
    std::string sep = c.substr(i, j - i);
    bool dashes = sep.find_first_not_of('-') == std::string::npos;
    if (!(sep == "." || sep == "_" || sep == "__" || dashes)) return false;
    i = j;
  }
  return true;
}

// domain-component: [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
bool ValidDomainComponent(const std::string& c) {
  if (c.empty() || c.size() > 63 || !IsAlnum(c.front()) || !IsAlnum(c.back())) return false;
  for (char ch : c) {
    if (!IsAlnum(ch) && ch != '-') return false;
  }
  return true;
}

bool ValidDomain(const std::string& d) {
  std::string host = d;
  size_t colon = d.rfind(':');
  if (colon != std::string::npos) {
    host = d.substr(0, colon);
    std::string port = d.substr(colon + 1);
    if (port.empty() || port.size() > 5) return false;
    for (char ch : port) {
      if (ch < '0' || ch > '9') return false;
    }
    if (std::stoi(port) < 1 || std::stoi(port) > 65535) return false;
  }
  if (host.empty() || host.size() > 253) return false;
  for (const auto& part : absl::StrSplit(host, '.')) {
    if (!ValidDomainComponent(std::string(part))) return false;
  }
  return true;
}

// tag: [\w][\w.-]{0,127}
bool ValidTag(const std::string& t) {
  if (t.empty() || t.size() > kMaxTagLength) return false;
  auto word = [](char c) { return IsAlnum(c) || c == '_'; };
  if (!word(t.front())) return false;
  for (char c : t) {
    if (!word(c) && c != '.' && c != '-') return false;
  }
  return true;
}

absl::Status Bad(const std::string& text, const std::string& why) {
  return absl::InvalidArgumentError(
      absl::StrCat("image reference \"", text.substr(0, kMaxReferenceLength), "\": ", why));
}

}  // namespace

std::string Reference::Name() const { return absl::StrCat(registry, "/", repository); }

std::string Reference::String() const {
  std::string s = Name();
  if (!tag.empty()) absl::StrAppend(&s, ":", tag);
  if (!digest.empty()) absl::StrAppend(&s, "@", digest);
  return s;
}

std::string Reference::ApiHost() const {
  return registry == kDockerHub ? "registry-1.docker.io" : registry;
}

absl::StatusOr<Reference> ParseReference(const std::string& text) {
  if (text.empty()) return Bad(text, "empty");
  if (text.size() > kMaxReferenceLength) return Bad(text, "too long");
  for (unsigned char c : text) {
    if (c <= 0x20 || c >= 0x7f) return Bad(text, "contains a space or non-ASCII character");
  }
  Reference ref;
  std::string rest = text;
  if (size_t at = rest.find('@'); at != std::string::npos) {
    ref.digest = rest.substr(at + 1);
    rest = rest.substr(0, at);
    if (!ValidateDigest(ref.digest).ok()) {
      return Bad(text, absl::StrCat("bad digest \"", ref.digest, "\" (want sha256:<64 hex>)"));
    }
  }
  // A tag follows the last ':' that is after the last '/'.
  size_t slash = rest.rfind('/');
  size_t colon = rest.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    ref.tag = rest.substr(colon + 1);
    rest = rest.substr(0, colon);
    if (!ValidTag(ref.tag)) return Bad(text, absl::StrCat("bad tag \"", ref.tag, "\""));
  }
  if (rest.empty()) return Bad(text, "missing repository");
  std::vector<std::string> parts = absl::StrSplit(rest, '/');
  // The first component is a registry if it looks like a host: has '.' or ':' or is
  // "localhost" (Docker's rule).
  if (parts.size() > 1 &&
      (parts[0].find_first_of(".:") != std::string::npos || parts[0] == "localhost")) {
    if (!ValidDomain(parts[0])) {
      return Bad(text, absl::StrCat("bad registry \"", parts[0], "\""));
    }
    ref.registry = parts[0];
    parts.erase(parts.begin());
  } else {
    ref.registry = kDockerHub;
  }
  if (ref.registry == "index.docker.io" || ref.registry == "registry-1.docker.io") {
    ref.registry = kDockerHub;
  }
  for (const auto& p : parts) {
    if (!ValidPathComponent(p)) {
      return Bad(text, absl::StrCat("bad repository component \"", p,
                                    "\" (lowercase letters, digits and . _ __ - separators)"));
    }
  }
  if (ref.registry == kDockerHub && parts.size() == 1) parts.insert(parts.begin(), "library");
  ref.repository = absl::StrJoin(parts, "/");
  if (ref.Name().size() > kMaxNameLength) return Bad(text, "name longer than 255 characters");
  if (ref.tag.empty() && ref.digest.empty()) ref.tag = "latest";
  return ref;
}

}  // namespace skiff::images
