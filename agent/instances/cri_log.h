#pragma once

// The CRI log format the shim writes to console.log (see shim/client.h), one record
// per line:  "<RFC3339Nano UTC> <stdout|stderr> <F|P> <bytes>\n"
// (P = partial: the line continues in the next record).

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace skiff::agent {

struct CriRecord {
  absl::Time time;
  bool is_stderr = false;
  bool partial = false;
  std::string line;  // without the record's trailing newline
};

// Parses one record (with or without its trailing '\n'). InvalidArgument names the
// part that is malformed.
absl::StatusOr<CriRecord> ParseCriRecord(absl::string_view text);

// Formats a record (used by tests and fakes that write console.log).
std::string FormatCriRecord(const CriRecord& record);

}  // namespace skiff::agent
