#pragma once

// Shell commands and the source tree, for tests that drive the project's scripts and
// Debian's tools (cpio, mkfs.erofs, ip, curl).

#include <string>

namespace skiff::testing {

struct ShellResult {
  int status = -1;     // pclose()'s wait status; 0 = exited 0
  std::string output;  // stdout
};

// Runs `command` with /bin/sh, returning its wait status and stdout.
ShellResult RunShell(const std::string& command);

// Runs `command`, returning its stdout; adds a test failure naming the command if it does
// not exit 0.
std::string Shell(const std::string& command);

// The source tree: $SKIFF_SOURCE_DIR (ctest sets it), else the configured one.
std::string SourceDir();

}  // namespace skiff::testing
