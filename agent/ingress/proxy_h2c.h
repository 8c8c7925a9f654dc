#pragma once

// HTTP/2 cleartext with prior knowledge (what gRPC clients speak): the proxy does not
// terminate HTTP/2; it reads just far enough into the client's first frames to learn the
// first request's :authority (and pin header), routes the connection by it, and then
// splices the whole connection, byte for byte, to the chosen instance — every stream of
// that connection goes to that one instance, under one lease.

#include <string>
#include <string_view>

namespace skiff::ingress::proxy {

// "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n": Beast parses its first part as a request line
// (method PRI, target *, version 20); kPrefaceTail is what follows in the buffer.
inline constexpr std::string_view kH2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
inline constexpr std::string_view kH2PrefaceTail = "SM\r\n\r\n";

struct H2cFirstRequest {
  enum class State { kNeedMore, kFound, kError };
  State state = State::kNeedMore;
  std::string authority;  // :authority, else a "host" field
  std::string pin;        // value of the pin header, if any
  std::string error;      // kError: what is wrong
};

// `bytes`: what the client sent after "PRI * HTTP/2.0\r\n\r\n" (so starting with
// kH2PrefaceTail). Walks the frames up to the first complete header block (HEADERS plus
// CONTINUATIONs) and decodes it with nghttp2's HPACK decoder. `pin_header` is matched
// case-insensitively. Frames longer than 16 KiB or a first header block past 64 KiB are
// errors.
H2cFirstRequest PeekH2cFirstRequest(std::string_view bytes, std::string_view pin_header);

}  // namespace skiff::ingress::proxy
