#include "agent/instances/label_selector.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/instances/spec_validation.h"

namespace skiff::agent {

absl::StatusOr<LabelSelector> LabelSelector::Parse(const std::string& text) {
  LabelSelector sel;
  if (text.size() > 4096) {
    return absl::InvalidArgumentError("label_selector: longer than 4096 bytes");
  }
  if (absl::StripAsciiWhitespace(text).empty()) return sel;
  for (absl::string_view raw : absl::StrSplit(text, ',')) {
    const std::string req(absl::StripAsciiWhitespace(raw));
    auto bad = [&](const std::string& why) {
      return absl::InvalidArgumentError(
          absl::StrCat("label_selector: requirement \"", req, "\" ", why));
    };
    if (req.empty()) return bad("is empty");
    Requirement r;
    size_t pos;
    if ((pos = req.find("!=")) != std::string::npos) {
      r.op = Op::kNotEquals;
      r.key = req.substr(0, pos);
      r.value = req.substr(pos + 2);
    } else if ((pos = req.find("==")) != std::string::npos) {
      r.op = Op::kEquals;
      r.key = req.substr(0, pos);
      r.value = req.substr(pos + 2);
    } else if ((pos = req.find('=')) != std::string::npos) {
      r.op = Op::kEquals;
      r.key = req.substr(0, pos);
      r.value = req.substr(pos + 1);
    } else if (req[0] == '!') {
      r.op = Op::kNotExists;
      r.key = req.substr(1);
    } else {
      r.op = Op::kExists;
      r.key = req;
    }
    r.key = std::string(absl::StripAsciiWhitespace(r.key));
    r.value = std::string(absl::StripAsciiWhitespace(r.value));
    if (!IsValidLabelKey(r.key)) return bad("has an invalid key");
    if (r.value.find_first_of("=!") != std::string::npos) return bad("has an invalid value");
    sel.requirements_.push_back(std::move(r));
  }
  return sel;
}

bool LabelSelector::Matches(const google::protobuf::Map<std::string, std::string>& labels) const {
  for (const Requirement& r : requirements_) {
    auto it = labels.find(r.key);
    const bool present = it != labels.end();
    switch (r.op) {
      case Op::kEquals:
        if (!present || it->second != r.value) return false;
        break;
      case Op::kNotEquals:
        if (present && it->second == r.value) return false;
        break;
      case Op::kExists:
        if (!present) return false;
        break;
      case Op::kNotExists:
        if (present) return false;
        break;
    }
  }
  return true;
}

}  // namespace skiff::agent
