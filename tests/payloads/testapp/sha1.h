#pragma once

// SHA-1 (FIPS 180-4), only for the WebSocket handshake (RFC 6455 section 4.2.2), where the
// protocol fixes the hash; never use it for anything that needs collision resistance.

#include <array>
#include <cstdint>
#include <string_view>

namespace skiff::testapp {

std::array<uint8_t, 20> Sha1(std::string_view data);

}  // namespace skiff::testapp
