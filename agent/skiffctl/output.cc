// Shared output helpers of skiffctl's subcommands.

#include <google/protobuf/util/json_util.h>

#include "agent/skiffctl/commands.h"

namespace skiff::skiffctl {

static const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    default:
      return "UNKNOWN";
  }
}

int RpcError(Context& ctx, const grpc::Status& status) {
  *ctx.err << "skiffctl: " << CodeName(status.error_code()) << ": " << status.error_message()
           << "\n";
  return 1;
}

int UsageError(Context& ctx, const std::string& message) {
  *ctx.err << "skiffctl: " << message << "\n";
  return 2;
}

std::string ToJson(const google::protobuf::Message& message, bool one_line) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = !one_line;
  // The canonical proto3 JSON mapping (lowerCamelCase names), with zero values shown.
  opts.always_print_primitive_fields = true;
  if (!google::protobuf::util::MessageToJsonString(message, &out, opts).ok()) return "{}";
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace skiff::skiffctl
