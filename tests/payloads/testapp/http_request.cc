#include "tests/payloads/testapp/http_request.h"

#include <algorithm>
#include <cctype>

namespace skiff::testapp {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool IsTokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::optional<uint64_t> ParseDecimal(std::string_view s) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

bool ParseHead(std::string_view head, Request* req) {
  size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  head.remove_prefix(eol == std::string_view::npos ? head.size() : eol + 2);
  size_t sp1 = line.find(' ');
  size_t sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1) return false;
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (method.empty() || !std::all_of(method.begin(), method.end(), IsTokenChar)) return false;
  if (target.empty() || target.find(' ') != std::string_view::npos) return false;
  if (version == "HTTP/1.1") {
    req->minor_version = 1;
  } else if (version == "HTTP/1.0") {
    req->minor_version = 0;
  } else {
    return false;
  }
  req->method = std::string(method);
  size_t q = target.find('?');
  req->path = std::string(target.substr(0, q));
  req->query = q == std::string_view::npos ? "" : std::string(target.substr(q + 1));
  req->headers.clear();
  while (!head.empty()) {
    eol = head.find("\r\n");
    line = head.substr(0, eol);
    head.remove_prefix(eol == std::string_view::npos ? head.size() : eol + 2);
    if (line.empty()) break;
    size_t colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos) return false;
    std::string_view name = line.substr(0, colon);
    if (!std::all_of(name.begin(), name.end(), IsTokenChar)) return false;
    req->headers.emplace_back(Lower(name), std::string(Trim(line.substr(colon + 1))));
  }
  // Framing (RFC 9112 section 6): chunked wins over Content-Length, and then the connection
  // is not reused; a Transfer-Encoding other than chunked cannot be framed.
  std::optional<uint64_t> length;
  bool has_te = false;
  req->chunked = false;
  for (const auto& [name, value] : req->headers) {
    if (name == "content-length") {
      auto v = ParseDecimal(value);
      if (!v || (length && *length != *v)) return false;
      length = v;
    } else if (name == "transfer-encoding") {
      has_te = true;
      std::string v = Lower(value);
      req->chunked = v.size() >= 7 && v.compare(v.size() - 7, 7, "chunked") == 0;
    }
  }
  if (has_te && !req->chunked) return false;
  req->content_length = req->chunked ? 0 : length.value_or(0);
  req->keep_alive = req->minor_version == 1 ? !req->HeaderHasToken("connection", "close")
                                            : req->HeaderHasToken("connection", "keep-alive");
  if (has_te && length) req->keep_alive = false;
  return true;
}

}  // namespace

const std::string* Request::Header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (n == name) return &v;
  }
  return nullptr;
}

bool Request::HeaderHasToken(std::string_view name, std::string_view token) const {
  for (const auto& [n, v] : headers) {
    if (n != name) continue;
    std::string_view rest = v;
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      std::string_view item = Trim(rest.substr(0, comma));
      if (item.size() == token.size() && Lower(item) == Lower(token)) return true;
      rest.remove_prefix(comma == std::string_view::npos ? rest.size() : comma + 1);
    }
  }
  return false;
}

HeadResult ReadRequestHead(Conn& conn, Request* req) {
  size_t scanned = 0;
  for (;;) {
    std::string_view b = conn.buffered();
    // Empty lines before a request are ignored (RFC 9112 section 2.2).
    while (b.size() >= 2 && b[0] == '\r' && b[1] == '\n') {
      conn.Consume(2);
      b = conn.buffered();
      scanned = 0;
    }
    size_t end = b.find("\r\n\r\n", scanned);
    if (end != std::string_view::npos) {
      if (end + 4 > kMaxHeadBytes) return HeadResult::kTooLarge;
      bool ok = ParseHead(b.substr(0, end + 2), req);
      conn.Consume(end + 4);
      return ok ? HeadResult::kOk : HeadResult::kBadRequest;
    }
    if (b.size() >= kMaxHeadBytes) return HeadResult::kTooLarge;
    scanned = b.size() >= 3 ? b.size() - 3 : 0;
    ssize_t n = conn.Fill();
    if (n <= 0) return b.empty() ? HeadResult::kClosed : HeadResult::kBadRequest;
  }
}

std::optional<uint64_t> QueryUint(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view kv = query.substr(0, amp);
    query.remove_prefix(amp == std::string_view::npos ? query.size() : amp + 1);
    size_t eq = kv.find('=');
    if (eq != std::string_view::npos && kv.substr(0, eq) == key) {
      return ParseDecimal(kv.substr(eq + 1));
    }
  }
  return std::nullopt;
}

BodyReader::BodyReader(Conn& conn, const Request& req)
    : conn_(conn), state_(req.chunked ? State::kChunkSize : State::kLength) {
  remaining_ = req.content_length;
  if (state_ == State::kLength && remaining_ == 0) state_ = State::kDone;
}

bool BodyReader::Need() { return !conn_.buffered().empty() || conn_.Fill() > 0; }

bool BodyReader::Line(std::string* line) {
  constexpr size_t kMaxLine = 4096;
  for (;;) {
    std::string_view b = conn_.buffered();
    size_t eol = b.find("\r\n");
    if (eol != std::string_view::npos) {
      if (eol > kMaxLine) return false;
      line->assign(b.substr(0, eol));
      conn_.Consume(eol + 2);
      return true;
    }
    if (b.size() > kMaxLine || conn_.Fill() <= 0) return false;
  }
}

bool BodyReader::Next(std::string_view* piece) {
  *piece = {};
  for (;;) {
    switch (state_) {
      case State::kDone:
        return true;
      case State::kLength:
      case State::kChunkData: {
        if (!Need()) return false;
        std::string_view b = conn_.buffered();
        size_t n = static_cast<size_t>(std::min<uint64_t>(b.size(), remaining_));
        *piece = b.substr(0, n);
        conn_.Consume(n);
        remaining_ -= n;
        consumed_ += n;
        if (remaining_ == 0) state_ = state_ == State::kLength ? State::kDone : State::kChunkCrlf;
        return true;
      }
      case State::kChunkCrlf: {
        std::string line;
        if (!Line(&line) || !line.empty()) return false;
        state_ = State::kChunkSize;
        break;
      }
      case State::kChunkSize: {
        std::string line;
        if (!Line(&line)) return false;
        std::string_view hex = Trim(std::string_view(line).substr(0, line.find(';')));
        if (hex.empty() || hex.size() > 15) return false;
        uint64_t size = 0;
        for (char c : hex) {
          int d = std::isxdigit(static_cast<unsigned char>(c))
                      ? (std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
                                                                     : (std::tolower(c) - 'a' + 10))
                      : -1;
          if (d < 0) return false;
          size = size * 16 + static_cast<uint64_t>(d);
        }
        remaining_ = size;
        state_ = size == 0 ? State::kTrailers : State::kChunkData;
        break;
      }
      case State::kTrailers: {
        std::string line;
        if (!Line(&line)) return false;
        if (line.empty()) state_ = State::kDone;
        break;
      }
    }
  }
}

bool BodyReader::Discard() {
  std::string_view piece;
  while (!done()) {
    if (!Next(&piece)) return false;
  }
  return true;
}

}  // namespace skiff::testapp
