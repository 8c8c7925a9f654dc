#pragma once

// A temp directory removed recursively (files, dirs; never following symlinks and never
// crossing mounts) when the object dies, so tests clean up even when they fail.

#include <ftw.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>

namespace skiff::testing {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/skiff-test-XXXXXX";
    if (mkdtemp(tmpl) != nullptr) path_ = tmpl;
  }
  ~TempDir() {
    if (path_.empty()) return;
    nftw(
        path_.c_str(),
        [](const char* p, const struct stat*, int, struct FTW*) {
          return ::remove(p) == 0 ? 0 : 0;
        },
        16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  bool ok() const { return !path_.empty(); }

 private:
  std::string path_;
};

}  // namespace skiff::testing
