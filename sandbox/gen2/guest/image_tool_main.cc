// skiff-guest-image: builds the gen2 guest images from the command line (for scripts, the
// kvm-linux end-to-end test and operators):
//   skiff-guest-image initramfs --init=PATH [--modules-dir=DIR --modules-list=FILE] --out=FILE
//   skiff-guest-image rootfs --layer=DIR [--layer=DIR ...] --out=FILE   (topmost layer first)

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "sandbox/gen2/guest/initramfs.h"
#include "sandbox/gen2/guest/root_image.h"

namespace {

int Usage() {
  std::fprintf(stderr,
               "usage: skiff-guest-image initramfs --init=PATH [--modules-dir=DIR "
               "--modules-list=FILE] --out=FILE\n"
               "       skiff-guest-image rootfs --layer=DIR [--layer=DIR ...] --out=FILE\n");
  return 2;
}

bool Flag(std::string_view arg, std::string_view name, std::string* value) {
  if (arg.substr(0, name.size()) != name) return false;
  *value = std::string(arg.substr(name.size()));
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return Usage();
  const std::string_view command = argv[1];
  skiff::gen2::guest::InitramfsSpec initramfs;
  skiff::gen2::guest::RootImageSpec rootfs;
  std::string out, value;
  for (int i = 2; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (Flag(arg, "--out=", &out) || Flag(arg, "--init=", &initramfs.init_path) ||
        Flag(arg, "--modules-dir=", &initramfs.modules_dir) ||
        Flag(arg, "--modules-list=", &initramfs.modules_list)) {
      continue;
    }
    if (Flag(arg, "--layer=", &value)) {
      rootfs.lower_dirs.push_back(value);
      continue;
    }
    std::fprintf(stderr, "skiff-guest-image: unknown argument %s\n", argv[i]);
    return Usage();
  }
  if (out.empty()) return Usage();
  absl::Status status;
  if (command == "initramfs") {
    if (initramfs.init_path.empty() ||
        initramfs.modules_dir.empty() != initramfs.modules_list.empty()) {
      return Usage();
    }
    status = skiff::gen2::guest::BuildInitramfs(initramfs, out);
  } else if (command == "rootfs") {
    status = skiff::gen2::guest::BuildRootImage(rootfs, out);
  } else {
    return Usage();
  }
  if (!status.ok()) {
    std::fprintf(stderr, "skiff-guest-image: %s\n", status.ToString().c_str());
    return 1;
  }
  std::printf("%s\n", out.c_str());
  return 0;
}
