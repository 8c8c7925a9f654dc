#include "tests/integration/gen2_testguest/testguest_output.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace skiff::gen2::testguest {
namespace {

// The value of `key=` among the space-separated words of `line`.
std::optional<absl::string_view> Field(absl::string_view line, absl::string_view key) {
  for (absl::string_view word : absl::StrSplit(line, ' ', absl::SkipEmpty())) {
    if (absl::ConsumePrefix(&word, key) && absl::ConsumePrefix(&word, "=")) return word;
  }
  return std::nullopt;
}

uint64_t HexField(absl::string_view line, absl::string_view key) {
  uint64_t v = 0;
  std::optional<absl::string_view> f = Field(line, key);
  if (f && absl::ConsumePrefix(&*f, "0x") && absl::SimpleHexAtoi(*f, &v)) return v;
  return 0;
}

uint32_t DecField(absl::string_view line, absl::string_view key) {
  uint32_t v = 0;
  std::optional<absl::string_view> f = Field(line, key);
  if (f && absl::SimpleAtoi(*f, &v)) return v;
  return 0;
}

std::string FromHex(absl::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    uint32_t byte = 0;
    if (!absl::SimpleHexAtoi(hex.substr(i, 2), &byte)) break;
    out.push_back(static_cast<char>(byte));
  }
  return out;
}

void ParseLine(absl::string_view line, GuestReport& r) {
  absl::string_view rest = line;
  if (absl::ConsumePrefix(&rest, "skiff-testguest ")) {
    r.entry = std::string(Field(rest, "entry").value_or(""));
  } else if (absl::ConsumePrefix(&rest, "cmdline=")) {
    r.cmdline = std::string(rest);
  } else if (absl::ConsumePrefix(&rest, "e820 ")) {
    r.e820.push_back({HexField(rest, "addr"), HexField(rest, "size"), DecField(rest, "type")});
  } else if (absl::ConsumePrefix(&rest, "initrd ")) {
    r.initrd_addr = HexField(rest, "addr");
    r.initrd_size = HexField(rest, "size");
  } else if (absl::ConsumePrefix(&rest, "cpu ")) {
    uint32_t id = 0;
    std::vector<absl::string_view> words = absl::StrSplit(rest, ' ');
    if (words.size() == 2 && absl::SimpleAtoi(words[0], &id)) {
      if (words[1] == "up") r.aps_up.push_back(id);
      if (words[1] == "bsp") r.bsp_apic_id = id;
    }
  } else if (absl::ConsumePrefix(&rest, "blk root ")) {
    uint32_t fnv = 0;
    std::optional<absl::string_view> f = Field(rest, "fnv1a");
    if (f && absl::SimpleHexAtoi(*f, &fnv)) r.root_fnv1a = fnv;
    r.root_sectors_read = DecField(rest, "read");
    r.root_read_only = DecField(rest, "ro") == 1;
  } else if (absl::ConsumePrefix(&rest, "blk scratch ")) {
    std::optional<absl::string_view> ok = Field(rest, "readback");
    if (ok) r.scratch_readback_ok = *ok == "ok";
    r.scratch_sectors_written = DecField(rest, "wrote");
  } else if (absl::ConsumePrefix(&rest, "net rx frame=")) {
    if (r.net_rx_frame.empty()) r.net_rx_frame = FromHex(rest);
  } else if (absl::ConsumePrefix(&rest, "control rx=")) {
    r.control_rx = std::string(rest);
  } else if (absl::ConsumePrefix(&rest, "garbage ")) {
    if (rest == "device-broken") {
      r.garbage_device_broken = true;
    } else {
      std::vector<absl::string_view> words = absl::StrSplit(rest, ' ');
      if (words.size() == 3 && words[1] == "device-broken") {
        r.garbage_broken.push_back(
            {std::string(words[0]), static_cast<uint32_t>(HexField(rest, "status"))});
      }
    }
  } else if (absl::ConsumePrefix(&rest, "error ")) {
    r.errors.emplace_back(rest);
  } else if (rest == "halt") {
    r.halted = true;
  } else if (rest == "done") {
    r.done = true;
  }
}

}  // namespace

GuestReport ParseGuestOutput(std::string_view serial_text) {
  absl::string_view serial(serial_text.data(), serial_text.size());
  GuestReport r;
  for (absl::string_view line : absl::StrSplit(serial, '\n')) {
    line = absl::StripTrailingAsciiWhitespace(line);
    // A line may carry a VMM's or QEMU's prefix before the guest's own.
    size_t at = line.find("tg: ");
    if (at == absl::string_view::npos) continue;
    line.remove_prefix(at + 4);
    r.lines.emplace_back(line);
    ParseLine(line, r);
  }
  return r;
}

uint32_t Fnv1a32(std::string_view data) {
  uint32_t h = 2166136261u;
  for (char c : data) {
    h ^= static_cast<uint8_t>(c);
    h *= 16777619u;
  }
  return h;
}

std::string ScratchPattern(uint64_t size) {
  std::string out(size, '\0');
  for (uint64_t o = 0; o < size; o++) out[o] = static_cast<char>(((7 * o + o / 512) & 0xff) ^ 0x5a);
  return out;
}

}  // namespace skiff::gen2::testguest
