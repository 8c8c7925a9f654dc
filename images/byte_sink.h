#pragma once

// Where a streamed download goes. Restart() discards what was written so far (a retried
// request starts again from byte 0).

#include <string_view>

#include "absl/status/status.h"

namespace skiff::images {

class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual absl::Status Restart() = 0;
  virtual absl::Status Write(std::string_view data) = 0;
};

}  // namespace skiff::images
