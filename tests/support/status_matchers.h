#pragma once

// GoogleTest helpers for absl::Status / absl::StatusOr, which Debian 12's abseil lacks.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace skiff::testing {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

MATCHER(IsOk, "is OK") {
  const absl::Status& s = ::skiff::testing::GetStatus(arg);
  if (!s.ok()) *result_listener << "status is " << s;
  return s.ok();
}

// StatusIs(code) and StatusIs(code, message_matcher).
MATCHER_P(StatusIs, code, "has code " + std::string(absl::StatusCodeToString(code))) {
  const absl::Status& s = ::skiff::testing::GetStatus(arg);
  *result_listener << "status is " << s;
  return s.code() == code;
}
MATCHER_P2(StatusIs, code, msg_matcher, "has code and matching message") {
  const absl::Status& s = ::skiff::testing::GetStatus(arg);
  *result_listener << "status is " << s;
  return s.code() == code &&
         ::testing::ExplainMatchResult(msg_matcher, std::string(s.message()), result_listener);
}

}  // namespace skiff::testing

#define SKIFF_ASSERT_OK(expr) ASSERT_THAT((expr), ::skiff::testing::IsOk())
#define SKIFF_EXPECT_OK(expr) EXPECT_THAT((expr), ::skiff::testing::IsOk())

// ASSERT_OK_AND_ASSIGN(auto x, StatusOrExpr());
#define SKIFF_ASSERT_OK_AND_ASSIGN(lhs, expr) \
  SKIFF_ASSERT_OK_AND_ASSIGN_IMPL_(SKIFF_STATUS_CONCAT_(_skiff_t_, __LINE__), lhs, expr)
#define SKIFF_ASSERT_OK_AND_ASSIGN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                     \
  ASSERT_THAT(tmp, ::skiff::testing::IsOk());            \
  lhs = std::move(tmp).value()
#ifndef SKIFF_STATUS_CONCAT_
#define SKIFF_STATUS_CONCAT_INNER_(a, b) a##b
#define SKIFF_STATUS_CONCAT_(a, b) SKIFF_STATUS_CONCAT_INNER_(a, b)
#endif
