#pragma once

// HTTP/1.1 request parsing for the test app (RFC 9112): the request head, then the body
// streamed piece by piece (Content-Length or chunked), never held whole.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/payloads/testapp/socket_io.h"

namespace skiff::testapp {

inline constexpr size_t kMaxHeadBytes = 16 * 1024;

struct Request {
  std::string method;
  std::string path;   // the target before '?'
  std::string query;  // after '?', without it
  int minor_version = 1;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  bool chunked = false;
  uint64_t content_length = 0;  // when !chunked
  bool keep_alive = true;

  // The first header named `name` (lower case), or nullptr.
  const std::string* Header(std::string_view name) const;
  // True if the comma-separated header `name` lists `token` (case-insensitive).
  bool HeaderHasToken(std::string_view name, std::string_view token) const;
};

enum class HeadResult { kOk, kClosed, kBadRequest, kTooLarge };

// Reads and parses one request head from `conn` (consuming it). kClosed: the peer closed
// (or failed) before sending a byte of a new request.
HeadResult ReadRequestHead(Conn& conn, Request* req);

// The value of `key` in a query string as an unsigned decimal, or nullopt if absent or not
// a number.
std::optional<uint64_t> QueryUint(std::string_view query, std::string_view key);

// Streams the request body out of the connection.
class BodyReader {
 public:
  BodyReader(Conn& conn, const Request& req);
  // Sets *piece to the next bytes of the body (a view valid until the next call; empty once
  // the body is complete). False if the body is malformed or the peer went away.
  bool Next(std::string_view* piece);
  // Reads and drops the rest of the body.
  bool Discard();
  bool done() const { return state_ == State::kDone; }
  // Body bytes returned so far.
  uint64_t consumed() const { return consumed_; }

 private:
  enum class State { kLength, kChunkSize, kChunkData, kChunkCrlf, kTrailers, kDone };
  // Makes sure at least one byte is buffered.
  bool Need();
  // Takes one CRLF-terminated line (without it); false if malformed or the peer went away.
  bool Line(std::string* line);

  Conn& conn_;
  State state_;
  uint64_t remaining_ = 0;
  uint64_t consumed_ = 0;
};

}  // namespace skiff::testapp
