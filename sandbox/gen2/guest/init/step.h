#pragma once

// The result of one skiff-init step: 0 or an errno, and what was being done
// ("mount(/dev/vda, /skiff/lower, erofs)"). skiff-init has no abseil; this is its Status.

#include <cerrno>
#include <string>

namespace skiff::gen2::init {

struct StepResult {
  int err = 0;
  std::string detail;
  bool ok() const { return err == 0; }
};

inline StepResult StepOk() { return {}; }
// A failure; an errno of 0 (a failing call that set none) becomes EIO.
inline StepResult StepFail(int err, std::string detail) {
  return {err != 0 ? err : EIO, std::move(detail)};
}

}  // namespace skiff::gen2::init
