#pragma once

// Shared by the gen2 VMM kvm tests: a temp dir, file reading, /proc/self counters.

#include <string>
#include <vector>

namespace skiff::gen2::testing {

// mkdtemp under /tmp; removed (recursively) by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string ReadAll(const std::string& path);
size_t CountOpenFds();
size_t CountMappings();
// Mappings of exactly `bytes` bytes (guest memory is one such mapping).
size_t CountMappingsOfSize(unsigned long bytes);

}  // namespace skiff::gen2::testing
