#include "images/hostile_json.h"

#include "absl/strings/str_cat.h"

namespace skiff::images {
namespace {

using nlohmann::json;

constexpr int kMaxJsonDepth = 64;

// nlohmann-json parses recursively: refuse deep nesting before it can exhaust the stack.
bool NestingWithin(const std::string& body, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < body.size(); ++i) {
    char c = body[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<nlohmann::json> ParseHostileJson(const std::string& body, size_t max,
                                                const char* what) {
  if (body.size() > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": ", body.size(), " bytes exceeds the limit of ", max));
  }
  if (!NestingWithin(body, kMaxJsonDepth)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": JSON nested deeper than ", kMaxJsonDepth));
  }
  try {
    json j = json::parse(body);
    if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(what, ": not an object"));
    return j;
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": invalid JSON: ", e.what()));
  }
}

}  // namespace skiff::images
