#pragma once

namespace skiff {

// How an instance's app ended, as far as its sandbox knows. gen1's init and gen2's VMM
// both report the app's wait status; when the report is missing (the init or the VMM
// died first) the wait status is theirs.
struct AppExit {
  bool reported = false;  // the app's wait status was reported
  int wait_status = 0;    // the app's (reported) or the init's / VMM's (not reported)
};

}  // namespace skiff
