#include "tests/support/shell.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

namespace skiff::testing {

ShellResult RunShell(const std::string& command) {
  ShellResult result;
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return result;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) result.output.append(buf, n);
  result.status = pclose(p);
  return result;
}

std::string Shell(const std::string& command) {
  ShellResult r = RunShell(command);
  EXPECT_EQ(r.status, 0) << command;
  return r.output;
}

std::string SourceDir() {
  const char* dir = getenv("SKIFF_SOURCE_DIR");
  return dir != nullptr && *dir != '\0' ? dir : SKIFF_DEFAULT_SOURCE_DIR;
}

}  // namespace skiff::testing
