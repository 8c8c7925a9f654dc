#include "agent/skiffctl/quantity.h"

#include <charconv>
#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace skiff::skiffctl {
namespace {

absl::Status Bad(const std::string& flag, const std::string& text, const std::string& want) {
  return absl::InvalidArgumentError(
      absl::StrCat("--", flag, ": \"", text.substr(0, 64), "\" is not ", want));
}

}  // namespace

absl::StatusOr<uint64_t> ParseMemory(const std::string& flag, const std::string& text) {
  struct Suffix {
    const char* s;
    uint64_t mul;
  };
  static constexpr Suffix kSuffixes[] = {
      {"Ki", 1ull << 10}, {"Mi", 1ull << 20},   {"Gi", 1ull << 30},
      {"Ti", 1ull << 40}, {"k", 1000ull},       {"K", 1000ull},
      {"M", 1000000ull},  {"G", 1000000000ull}, {"T", 1000000000000ull}};
  std::string digits = text;
  uint64_t mul = 1;
  for (const Suffix& s : kSuffixes) {
    const std::string suf = s.s;
    if (text.size() > suf.size() && text.compare(text.size() - suf.size(), suf.size(), suf) == 0) {
      digits = text.substr(0, text.size() - suf.size());
      mul = s.mul;
      break;
    }
  }
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (digits.empty() || ec != std::errc() || p != digits.data() + digits.size()) {
    return Bad(flag, text, "a size like 256Mi, 1Gi or 1048576");
  }
  if (n != 0 && mul > UINT64_MAX / n) return Bad(flag, text, "a size that fits in 64 bits");
  return n * mul;
}

absl::StatusOr<uint32_t> ParseCpu(const std::string& flag, const std::string& text) {
  if (!text.empty() && text.back() == 'm') {
    uint32_t milli = 0;
    const std::string digits = text.substr(0, text.size() - 1);
    auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), milli);
    if (digits.empty() || ec != std::errc() || p != digits.data() + digits.size()) {
      return Bad(flag, text, "a CPU amount like 500m or 1.5");
    }
    return milli;
  }
  double cpus = 0;
  if (!absl::SimpleAtod(text, &cpus) || !std::isfinite(cpus) || cpus < 0 || cpus > 4e6) {
    return Bad(flag, text, "a CPU amount like 500m or 1.5");
  }
  return static_cast<uint32_t>(std::llround(cpus * 1000));
}

absl::StatusOr<absl::Duration> ParseDurationFlag(const std::string& flag, const std::string& text) {
  absl::Duration d;
  if (text == "0") return absl::ZeroDuration();
  if (!absl::ParseDuration(text, &d) || d < absl::ZeroDuration() || d == absl::InfiniteDuration()) {
    return Bad(flag, text, "a duration like 10s, 500ms or 2m");
  }
  return d;
}

std::string HumanBytes(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? absl::StrCat(bytes, " B") : absl::StrFormat("%.1f %s", v, kUnits[u]);
}

}  // namespace skiff::skiffctl
