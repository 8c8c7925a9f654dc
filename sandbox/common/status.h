#pragma once

// Status helpers that Debian 12's abseil lacks: early-return macros and
// errno-carrying constructors. Every message names the operation and its argument:
//   return ErrnoStatus(errno, "mount(overlay, ", target, ")");

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace skiff {

// Maps an errno value to the closest absl::StatusCode.
absl::StatusCode ErrnoToCode(int err);

// "op: ENAME (strerror)" with a code derived from errno.
template <typename... Args>
absl::Status ErrnoStatus(int err, const Args&... op) {
  return absl::Status(ErrnoToCode(err),
                      absl::StrCat(op..., ": ", strerrorname_np(err) ? strerrorname_np(err) : "E?",
                                   " (", strerror(err), ")"));
}

// Prefixes a status message with context, keeping its code.
absl::Status Annotate(const absl::Status& s, absl::string_view context);

}  // namespace skiff

#define SKIFF_STATUS_CONCAT_INNER_(a, b) a##b
#define SKIFF_STATUS_CONCAT_(a, b) SKIFF_STATUS_CONCAT_INNER_(a, b)

#define SKIFF_RETURN_IF_ERROR(expr)                         \
  do {                                                      \
    if (absl::Status _skiff_st = (expr); !_skiff_st.ok()) { \
      return _skiff_st;                                     \
    }                                                       \
  } while (0)

#define SKIFF_ASSIGN_OR_RETURN(lhs, expr) \
  SKIFF_ASSIGN_OR_RETURN_IMPL_(SKIFF_STATUS_CONCAT_(_skiff_sor_, __LINE__), lhs, expr)

#define SKIFF_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return std::move(tmp).status();     \
  lhs = std::move(tmp).value()
