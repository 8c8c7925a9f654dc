#pragma once

// The control protocol's wire format. A frame is
//   [u32 length, little-endian][u8 type][payload: length - 1 bytes]
// where 1 <= length <= kMaxFrameLength. Payload fields, in the order of messages.h, are
//   u8, u16, u32, i32, u64 (little-endian), bool (u8 0 or 1),
//   string = u32 byte count + bytes, list = u32 count + elements, array = fixed bytes.
// Decoding rejects a frame that is too long, of an unknown type, truncated, with bytes left
// over, or whose message breaks a rule of validate.h. A stream that failed to decode stays
// failed: after a bad frame the two ends no longer agree where frames start.
//
// Only the C++ standard library (linked into the static skiff-init).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "sandbox/gen2/guest/control/messages.h"

namespace skiff::gen2::control {

inline constexpr size_t kFrameHeaderBytes = 5;         // length + type
inline constexpr uint32_t kMaxFrameLength = 1u << 20;  // type + payload

// The frame for `message`. The caller has checked ValidateMessage(message) (the host
// wrapper does); an invalid message still encodes, and the receiver rejects it.
std::string EncodeFrame(const Message& message);

enum class DecodeStatus { kMessage, kNeedMore, kError };

// Decodes the first frame of `buffer`. kMessage: *out holds it and *consumed its size in
// bytes. kNeedMore: `buffer` holds only a prefix of a frame (whose header, if complete, is
// acceptable). kError: *error says why.
DecodeStatus DecodeFrame(std::string_view buffer, Message* out, size_t* consumed,
                         std::string* error);

// Turns a byte stream into messages: Append what arrives, call Next until kNeedMore.
class FrameReader {
 public:
  void Append(const char* data, size_t size) { buffer_.append(data, size); }
  DecodeStatus Next(Message* out, std::string* error);
  bool failed() const { return failed_; }
  size_t buffered() const { return buffer_.size() - start_; }

 private:
  std::string buffer_;
  size_t start_ = 0;
  bool failed_ = false;
  std::string failure_;
};

}  // namespace skiff::gen2::control
