#pragma once

// Header rewriting for the reverse proxy (RFC 9110 §7.6): hop-by-hop fields are removed in
// both directions, X-Forwarded-* are set on requests. Pure functions on Beast field sets.

#include <string>
#include <string_view>

#include "agent/ingress/proxy_asio.h"

namespace skiff::ingress::proxy {

// True when the message asks for a protocol switch: an Upgrade field and "upgrade" among the
// Connection tokens.
bool WantsUpgrade(const http::fields& fields);

// Removes Connection and every field it names, Keep-Alive, TE, Trailer, Transfer-Encoding,
// Upgrade, Proxy-Connection, Proxy-Authenticate and Proxy-Authorization. With
// `keep_upgrade` (a protocol switch being forwarded), Upgrade survives and Connection is
// reset to exactly "upgrade" ("upgrade, HTTP2-Settings" for an h2c upgrade, whose
// HTTP2-Settings field is kept).
void StripHopByHop(http::fields& fields, bool keep_upgrade);

// The header of a request as Beast's serializer writes it — the request line, always
// HTTP/1.1 (the proxy speaks 1.1 upstream), each field as "name: value" in order, the empty
// line — into `out` (cleared first; its capacity is kept), so that a request with no body
// goes out in one write without the serializer.
void FormatRequestHead(const http::request_header<>& req, std::string* out);

// The same for a response's header: the status line ("HTTP/1.x", the code, the reason as
// received or else the standard one), each field, the empty line.
void FormatResponseHead(const http::response_header<>& res, std::string* out);

// X-Forwarded-For: the values received (all fields, in order) + ", " + client_ip;
// X-Forwarded-Proto: http; X-Forwarded-Host: the Host received (left unset without one).
void SetForwardedHeaders(http::fields& fields, std::string_view client_ip);

}  // namespace skiff::ingress::proxy
