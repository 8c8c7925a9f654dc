#pragma once

// A tiny x86-64 guest the VMM tests build themselves, in the two shapes the VMM loads: a
// bzImage (a boot-protocol 2.15 setup header, one setup sector, the 64-bit entry at
// +0x200 of the protected-mode part) and an ELF64 executable (one PT_LOAD at 1 MiB).
//
// Program kPrintCmdline: prints the NUL-terminated command line whose address it reads
// from the zero page (rsi + cmd_line_ptr) on COM1, then a newline, then resets the VM
// through the i8042 (out 0x64, 0xfe). So it proves: the 64-bit entry, rsi = zero page,
// cmd_line_ptr, port I/O exits, and the reset path.
// Program kSpin: jumps to itself forever (for stopping a VM from the host).
// Program kTripleFault: executes ud2 with an empty IDT (the CPU shuts down).

#include <cstdint>
#include <string>
#include <vector>

namespace skiff::gen2::testing {

enum class TinyProgram { kPrintCmdline, kSpin, kTripleFault };

std::vector<uint8_t> TinyCode(TinyProgram program);
std::vector<uint8_t> TinyBzImage(TinyProgram program);
std::vector<uint8_t> TinyElf(TinyProgram program);

// Writes `bytes` to `path` (created or truncated); aborts the test binary on failure.
void WriteBytes(const std::string& path, const std::vector<uint8_t>& bytes);

}  // namespace skiff::gen2::testing
