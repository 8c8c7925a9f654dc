// skiff-shim --state-dir DIR: supervises one instance (see shim/shim.h).

#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "shim/shim.h"

int main(int argc, char** argv) {
  std::string state_dir;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--state-dir") == 0 && i + 1 < argc) {
      state_dir = argv[++i];
    } else {
      fprintf(stderr, "usage: skiff-shim --state-dir DIR\n");
      return 2;
    }
  }
  if (state_dir.empty() || state_dir[0] != '/') {
    fprintf(stderr, "skiff-shim: --state-dir must be an absolute path\n");
    return 2;
  }
  // Inherit nothing but stdio from whoever started us.
  syscall(SYS_close_range, 3U, ~0U, 0U);
  return skiff::shim::RunShim(state_dir);
}
