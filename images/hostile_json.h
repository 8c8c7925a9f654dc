#pragma once

// The parse boundary for JSON from outside (registries, image content): size- and
// depth-capped, nlohmann-json exceptions turned into InvalidArgument naming `what`.

#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/statusor.h"

namespace skiff::images {

// Parses `body` into a JSON object; refuses more than `max_bytes` or nesting deeper than 64.
absl::StatusOr<nlohmann::json> ParseHostileJson(const std::string& body, size_t max_bytes,
                                                const char* what);

}  // namespace skiff::images
