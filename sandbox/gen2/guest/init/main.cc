// skiff-init: the gen2 guest's PID 1 (see init.h; flags in options.h).

#include <cstdio>

#include "sandbox/gen2/guest/init/init.h"
#include "sandbox/gen2/guest/init/options.h"

int main(int argc, char** argv) {
  skiff::gen2::init::Options options;
  std::string error;
  if (!skiff::gen2::init::ParseOptions(argc, argv, &options, &error)) {
    std::fprintf(stderr, "skiff-init: %s\n", error.c_str());
    return 2;
  }
  return skiff::gen2::init::RunInit(options);
}
