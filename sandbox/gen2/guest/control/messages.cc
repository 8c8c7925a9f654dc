#include "sandbox/gen2/guest/control/messages.h"

namespace skiff::gen2::control {

const char* InitStepName(InitStep step) {
  switch (step) {
    case InitStep::kMountKernelFs:
      return "mount_kernel_fs";
    case InitStep::kLoadModules:
      return "load_modules";
    case InitStep::kOpenControl:
      return "open_control";
    case InitStep::kHello:
      return "hello";
    case InitStep::kReceiveSpec:
      return "receive_spec";
    case InitStep::kMountRoot:
      return "mount_root";
    case InitStep::kMoveKernelFs:
      return "move_kernel_fs";
    case InitStep::kWriteFiles:
      return "write_files";
    case InitStep::kHostname:
      return "hostname";
    case InitStep::kNetwork:
      return "network";
    case InitStep::kSwitchRoot:
      return "switch_root";
    case InitStep::kStartApp:
      return "start_app";
    case InitStep::kSupervise:
      return "supervise";
    case InitStep::kControl:
      return "control";
  }
  return "unknown";
}

MessageType TypeOf(const Message& message) {
  struct Visitor {
    MessageType operator()(const InstanceSpec&) const { return MessageType::kSpec; }
    MessageType operator()(const SignalRequest&) const { return MessageType::kSignal; }
    MessageType operator()(const Hello&) const { return MessageType::kHello; }
    MessageType operator()(const Started&) const { return MessageType::kStarted; }
    MessageType operator()(const LogChunk&) const { return MessageType::kLog; }
    MessageType operator()(const Exited&) const { return MessageType::kExited; }
    MessageType operator()(const Error&) const { return MessageType::kError; }
  };
  return std::visit(Visitor{}, message);
}

}  // namespace skiff::gen2::control
