#include "agent/instances/cri_log.h"

#include "absl/strings/str_cat.h"

namespace skiff::agent {

absl::StatusOr<CriRecord> ParseCriRecord(absl::string_view text) {
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  auto bad = [&](const char* why) {
    return absl::InvalidArgumentError(absl::StrCat("CRI log record \"", text.substr(0, 48),
                                                   text.size() > 48 ? "...\"" : "\"", ": ", why));
  };
  const size_t sp1 = text.find(' ');
  if (sp1 == absl::string_view::npos) return bad("no timestamp");
  CriRecord rec;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, std::string(text.substr(0, sp1)), &rec.time, &err)) {
    return bad("bad timestamp");
  }
  const size_t sp2 = text.find(' ', sp1 + 1);
  if (sp2 == absl::string_view::npos) return bad("no stream");
  const absl::string_view stream = text.substr(sp1 + 1, sp2 - sp1 - 1);
  if (stream == "stdout") {
    rec.is_stderr = false;
  } else if (stream == "stderr") {
    rec.is_stderr = true;
  } else {
    return bad("stream is not stdout or stderr");
  }
  // The tag is "F" or "P" (CRI allows further ':'-separated tags; the first decides).
  const size_t sp3 = text.find(' ', sp2 + 1);
  const absl::string_view tag =
      sp3 == absl::string_view::npos ? text.substr(sp2 + 1) : text.substr(sp2 + 1, sp3 - sp2 - 1);
  const absl::string_view first_tag = tag.substr(0, tag.find(':'));
  if (first_tag == "F") {
    rec.partial = false;
  } else if (first_tag == "P") {
    rec.partial = true;
  } else {
    return bad("tag is not F or P");
  }
  if (sp3 != absl::string_view::npos) rec.line = std::string(text.substr(sp3 + 1));
  return rec;
}

std::string FormatCriRecord(const CriRecord& record) {
  return absl::StrCat(absl::FormatTime("%Y-%m-%dT%H:%M:%E9SZ", record.time, absl::UTCTimeZone()),
                      record.is_stderr ? " stderr " : " stdout ", record.partial ? "P " : "F ",
                      record.line, "\n");
}

}  // namespace skiff::agent
