#pragma once

// The fixed-size record a sandbox child (init or app) writes to the close-on-exec error
// pipe when a step between clone() and execve() fails, and what the parent makes of it.
// Writing it allocates nothing; reading EOF instead means execve() succeeded.

#include <cstdint>

namespace skiff::gen1 {

enum class ChildStep : int32_t {
  kNone = 0,
  kWaitRelease,
  kSignalMask,
  kUnshareCgroup,
  kSetHostname,
  kMountPrivate,
  kMountTmpfsLayer,
  kMkdirLayer,
  kLinkLowerDir,
  kMountOverlay,
  kPivotRoot,
  kDetachOldRoot,
  kMountProc,
  kMountDev,
  kMountDevPts,
  kMountDevShm,
  kMakeDevNode,
  kDevSymlink,
  kMountSys,
  kWriteEtcFile,
  kConfigureNetwork,
  kForkApp,
  kStdio,
  kSetRlimits,
  kDropBoundingSet,
  kSetGroups,
  kSetGid,
  kSetUid,
  kCapabilities,
  kNoNewPrivs,
  kSeccomp,
  kChdir,
  kExecve,
};

struct ChildError {
  ChildStep step = ChildStep::kNone;
  int32_t err = 0;  // errno
  int32_t arg = 0;  // step-specific index (e.g. which /dev node or /etc file)
};

// A stable name for the step ("mount overlay", "execve", ...).
const char* ChildStepName(ChildStep step);

// Async-signal-safe: writes the record to `fd` (retrying on EINTR) and _exit(127)s.
[[noreturn]] void ReportChildErrorAndExit(int fd, const ChildError& error);

// Async-signal-safe helpers for child steps: OK is {kNone}.
inline ChildError ChildOk() { return ChildError{}; }
inline ChildError ChildFail(ChildStep step, int err, int arg = 0) {
  return ChildError{step, err, arg};
}
inline bool IsChildOk(const ChildError& e) { return e.step == ChildStep::kNone; }

}  // namespace skiff::gen1
