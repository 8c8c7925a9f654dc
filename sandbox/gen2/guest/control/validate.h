#pragma once

// The rules every control message obeys. Both ends treat the other as hostile: the
// decoder runs these on every message it accepts, the host runs them before it sends.

#include <cstddef>
#include <cstdint>
#include <string>

#include "sandbox/gen2/guest/control/messages.h"

namespace skiff::gen2::control {

inline constexpr size_t kMaxArgs = 4096;
inline constexpr size_t kMaxEnv = 4096;
inline constexpr size_t kMaxArgBytes = 128 * 1024;  // the kernel's MAX_ARG_STRLEN
inline constexpr size_t kMaxPathBytes = 4095;
inline constexpr size_t kMaxHostnameBytes = 64;
inline constexpr size_t kMaxDeviceBytes = 64;
inline constexpr size_t kMaxFiles = 16;
inline constexpr size_t kMaxFileBytes = 64 * 1024;
inline constexpr size_t kMaxLogChunk = 16 * 1024;
inline constexpr size_t kMaxErrorDetail = 256;
inline constexpr uint64_t kMinTmpfsBytes = 1ull << 20;
inline constexpr uint64_t kMaxTmpfsBytes = 1ull << 40;

// "" when `message` is valid, else what is wrong, naming the field:
//   "spec.env[3]: no '=' in \"FOO\"".
std::string ValidateMessage(const Message& message);

// True for the signals the host may ask the guest to deliver: TERM, KILL, INT, HUP, QUIT,
// USR1, USR2.
bool IsForwardableSignal(int32_t signo);

}  // namespace skiff::gen2::control
