#include "agent/ingress/proxy_h2c.h"

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace skiff::ingress::proxy {
namespace {

constexpr size_t kFrameHeaderBytes = 9;
constexpr uint32_t kMaxFrameBytes = 16384;  // SETTINGS_MAX_FRAME_SIZE's initial value
constexpr size_t kMaxHeaderBlockBytes = 64 * 1024;
constexpr uint8_t kTypeHeaders = 0x1;
constexpr uint8_t kTypeContinuation = 0x9;
constexpr uint8_t kFlagEndHeaders = 0x4;
constexpr uint8_t kFlagPadded = 0x8;
constexpr uint8_t kFlagPriority = 0x20;

H2cFirstRequest Error(std::string message) {
  H2cFirstRequest r;
  r.state = H2cFirstRequest::State::kError;
  r.error = std::move(message);
  return r;
}

}  // namespace

H2cFirstRequest PeekH2cFirstRequest(std::string_view bytes, std::string_view pin_header) {
  if (bytes.size() < kH2PrefaceTail.size()) {
    if (kH2PrefaceTail.substr(0, bytes.size()) != bytes) return Error("bad HTTP/2 preface");
    return {};
  }
  if (bytes.substr(0, kH2PrefaceTail.size()) != kH2PrefaceTail) {
    return Error("bad HTTP/2 preface");
  }
  std::string_view rest = bytes.substr(kH2PrefaceTail.size());
  std::string block;
  bool in_block = false;
  for (;;) {
    if (rest.size() < kFrameHeaderBytes) return {};
    const auto* h = reinterpret_cast<const uint8_t*>(rest.data());
    const uint32_t length = (uint32_t{h[0]} << 16) | (uint32_t{h[1]} << 8) | h[2];
    const uint8_t type = h[3];
    const uint8_t flags = h[4];
    if (length > kMaxFrameBytes) {
      return Error(absl::StrCat("HTTP/2 frame of ", length, " bytes before the first request"));
    }
    if (rest.size() < kFrameHeaderBytes + length) return {};
    std::string_view payload = rest.substr(kFrameHeaderBytes, length);
    rest.remove_prefix(kFrameHeaderBytes + length);
    if (in_block && type != kTypeContinuation) return Error("HTTP/2 header block interrupted");
    if (type == kTypeHeaders) {
      size_t pad = 0;
      if (flags & kFlagPadded) {
        if (payload.empty()) return Error("HTTP/2 HEADERS: padded but empty");
        pad = static_cast<uint8_t>(payload[0]);
        payload.remove_prefix(1);
      }
      if (flags & kFlagPriority) {
        if (payload.size() < 5) return Error("HTTP/2 HEADERS: short priority");
        payload.remove_prefix(5);
      }
      if (pad > payload.size()) return Error("HTTP/2 HEADERS: padding past the payload");
      payload.remove_suffix(pad);
      in_block = true;
    } else if (type != kTypeContinuation) {
      continue;  // SETTINGS, WINDOW_UPDATE, PRIORITY...: the instance will see them
    } else if (!in_block) {
      return Error("HTTP/2 CONTINUATION without HEADERS");
    }
    block.append(payload.data(), payload.size());
    if (block.size() > kMaxHeaderBlockBytes) return Error("HTTP/2 first header block too large");
    if (flags & kFlagEndHeaders) break;
  }

  nghttp2_hd_inflater* raw = nullptr;
  if (nghttp2_hd_inflate_new(&raw) != 0) return Error("nghttp2_hd_inflate_new failed");
  std::unique_ptr<nghttp2_hd_inflater, decltype(&nghttp2_hd_inflate_del)> inflater(
      raw, &nghttp2_hd_inflate_del);
  H2cFirstRequest found;
  std::string host;
  auto* in = reinterpret_cast<uint8_t*>(block.data());
  size_t in_len = block.size();
  for (;;) {
    nghttp2_nv nv;
    int inflate_flags = 0;
    ssize_t used =
        nghttp2_hd_inflate_hd2(inflater.get(), &nv, &inflate_flags, in, in_len, /*in_final=*/1);
    if (used < 0) return Error(absl::StrCat("HTTP/2 HPACK: ", nghttp2_strerror(int(used))));
    in += used;
    in_len -= static_cast<size_t>(used);
    if (inflate_flags & NGHTTP2_HD_INFLATE_EMIT) {
      std::string_view name(reinterpret_cast<const char*>(nv.name), nv.namelen);
      std::string_view value(reinterpret_cast<const char*>(nv.value), nv.valuelen);
      if (name == ":authority") {
        found.authority.assign(value.data(), value.size());
      } else if (name == "host") {
        host.assign(value.data(), value.size());
      } else if (absl::EqualsIgnoreCase(absl::string_view(name.data(), name.size()),
                                        absl::string_view(pin_header.data(), pin_header.size()))) {
        found.pin.assign(value.data(), value.size());
      }
    }
    if (inflate_flags & NGHTTP2_HD_INFLATE_FINAL) {
      nghttp2_hd_inflate_end_headers(inflater.get());
      break;
    }
    if ((inflate_flags & NGHTTP2_HD_INFLATE_EMIT) == 0 && in_len == 0) break;
  }
  if (found.authority.empty()) found.authority = std::move(host);
  if (found.authority.empty()) return Error("HTTP/2 first request has no :authority");
  found.state = H2cFirstRequest::State::kFound;
  return found;
}

}  // namespace skiff::ingress::proxy
