#pragma once

// Standard base64 (RFC 4648 section 4, with padding), for the WebSocket handshake.

#include <string>
#include <string_view>

namespace skiff::testapp {

std::string Base64Encode(std::string_view data);

}  // namespace skiff::testapp
