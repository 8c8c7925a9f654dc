#include "tests/payloads/testapp/websocket.h"

#include <cstdint>
#include <cstring>

#include "tests/payloads/testapp/base64.h"
#include "tests/payloads/testapp/sha1.h"

namespace skiff::testapp {
namespace {

constexpr uint8_t kContinuation = 0x0, kText = 0x1, kBinary = 0x2, kClose = 0x8, kPing = 0x9,
                  kPong = 0xA;
constexpr uint64_t kMaxControlPayload = 125;

// Reads exactly n bytes into out.
bool ReadExact(Conn& conn, void* out, size_t n) {
  auto* p = static_cast<char*>(out);
  while (n > 0) {
    if (conn.buffered().empty() && conn.Fill() <= 0) return false;
    std::string_view b = conn.buffered();
    size_t k = std::min(n, b.size());
    std::memcpy(p, b.data(), k);
    conn.Consume(k);
    p += k;
    n -= k;
  }
  return true;
}

std::string FrameHeader(bool fin, uint8_t opcode, uint64_t len) {
  std::string h;
  h += static_cast<char>((fin ? 0x80 : 0) | opcode);
  if (len < 126) {
    h += static_cast<char>(len);
  } else if (len <= 0xFFFF) {
    h += static_cast<char>(126);
    h += static_cast<char>(len >> 8);
    h += static_cast<char>(len & 0xFF);
  } else {
    h += static_cast<char>(127);
    for (int i = 7; i >= 0; --i) h += static_cast<char>((len >> (8 * i)) & 0xFF);
  }
  return h;
}

bool SendClose(Conn& conn, uint16_t code) {
  std::string payload{static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
  return conn.WriteAll(FrameHeader(true, kClose, payload.size()) + payload);
}

}  // namespace

std::string WebSocketAccept(const std::string& key) {
  auto digest = Sha1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
  return Base64Encode(std::string_view(reinterpret_cast<const char*>(digest.data()), 20));
}

void ServeWebSocket(Conn& conn, const Request& req) {
  const std::string* key = req.Header("sec-websocket-key");
  const std::string* version = req.Header("sec-websocket-version");
  if (req.method != "GET" || !req.HeaderHasToken("upgrade", "websocket") ||
      !req.HeaderHasToken("connection", "upgrade") || key == nullptr || key->size() != 24 ||
      version == nullptr || *version != "13") {
    std::string body = "not a WebSocket upgrade (RFC 6455 section 4.1)\n";
    conn.WriteAll(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n"
        "Sec-WebSocket-Version: 13\r\nContent-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + body);
    return;
  }
  if (!conn.WriteAll("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: " +
                     WebSocketAccept(*key) + "\r\n\r\n")) {
    return;
  }
  std::string out;
  for (;;) {
    uint8_t h[2];
    if (!ReadExact(conn, h, 2)) return;
    bool fin = h[0] & 0x80;
    uint8_t opcode = h[0] & 0x0F;
    bool masked = h[1] & 0x80;
    uint64_t len = h[1] & 0x7F;
    if ((h[0] & 0x70) != 0 || !masked) {  // no extensions; clients must mask (section 5.1)
      SendClose(conn, 1002);
      return;
    }
    if (len == 126) {
      uint8_t e[2];
      if (!ReadExact(conn, e, 2)) return;
      len = uint64_t{e[0]} << 8 | e[1];
    } else if (len == 127) {
      uint8_t e[8];
      if (!ReadExact(conn, e, 8)) return;
      len = 0;
      for (uint8_t b : e) len = len << 8 | b;
      if (len >> 63) {
        SendClose(conn, 1002);
        return;
      }
    }
    uint8_t mask[4];
    if (!ReadExact(conn, mask, 4)) return;
    bool control = opcode & 0x8;
    if (control && (len > kMaxControlPayload || !fin)) {
      SendClose(conn, 1002);
      return;
    }
    if (!control && opcode != kContinuation && opcode != kText && opcode != kBinary) {
      SendClose(conn, 1002);
      return;
    }
    if (control && opcode != kClose && opcode != kPing && opcode != kPong) {
      SendClose(conn, 1002);
      return;
    }
    uint8_t reply_opcode = opcode == kPing ? kPong : opcode;
    bool reply = opcode != kPong;
    if (reply && !conn.WriteAll(FrameHeader(fin, reply_opcode, len))) return;
    // The payload, unmasked and echoed piece by piece.
    uint64_t offset = 0;
    while (offset < len) {
      if (conn.buffered().empty() && conn.Fill() <= 0) return;
      std::string_view b = conn.buffered();
      size_t k = static_cast<size_t>(std::min<uint64_t>(b.size(), len - offset));
      out.assign(b.data(), k);
      conn.Consume(k);
      for (size_t i = 0; i < k; ++i) out[i] = static_cast<char>(out[i] ^ mask[(offset + i) % 4]);
      offset += k;
      if (reply && !conn.WriteAll(out)) return;
    }
    if (opcode == kClose) return;  // answered with the same payload (its status code)
  }
}

}  // namespace skiff::testapp
