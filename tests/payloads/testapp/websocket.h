#pragma once

// WebSocket (RFC 6455) for the test app's GET /ws: the opening handshake, then every data
// frame echoed back (same opcode and FIN, unmasked, streamed), pings answered with pongs and
// a close frame answered with a close frame carrying the same status code.

#include <string>

#include "tests/payloads/testapp/http_request.h"
#include "tests/payloads/testapp/socket_io.h"

namespace skiff::testapp {

// Sec-WebSocket-Accept for a Sec-WebSocket-Key (section 4.2.2).
std::string WebSocketAccept(const std::string& key);

// Answers the upgrade request (101, or 400 if it is not a valid WebSocket upgrade) and runs
// the echo loop until the peer closes. The connection is not reusable afterwards.
void ServeWebSocket(Conn& conn, const Request& req);

}  // namespace skiff::testapp
