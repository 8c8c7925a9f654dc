#pragma once

// skiff-init's end of the control protocol: the guest's /dev/hvc0 (the VMM's
// virtio-console, a plain byte pipe to a host Unix socket) in raw mode, or in test mode
// a Unix socket or an inherited fd.

#include <string>

#include "sandbox/common/unique_fd.h"
#include "sandbox/gen2/guest/control/codec.h"
#include "sandbox/gen2/guest/control/messages.h"
#include "sandbox/gen2/guest/init/options.h"
#include "sandbox/gen2/guest/init/step.h"

namespace skiff::gen2::init {

class ControlChannel {
 public:
  StepResult Open(const Options& options);
  bool is_open() const { return fd_.valid(); }
  int fd() const { return fd_.get(); }

  // Writes the whole frame, blocking (the host's reading paces the guest).
  StepResult Send(const control::Message& message);

  // One read(): appends what arrived to the frame reader. Sets *eof at end of stream.
  StepResult ReadSome(bool* eof);
  // The next complete message, if any (see FrameReader::Next).
  control::DecodeStatus Next(control::Message* out, std::string* error) {
    return reader_.Next(out, error);
  }
  // Blocks until a whole message arrived. EPROTO for a malformed frame (detail says why),
  // ECONNRESET if the host closed the channel first.
  StepResult Receive(control::Message* out);

 private:
  UniqueFd fd_;
  control::FrameReader reader_;
};

}  // namespace skiff::gen2::init
