#pragma once

// skiffctl's subcommands. Each returns the process exit code: 0 on success, 1 with the
// gRPC error printed to stderr on an RPC failure, 2 for a usage error.

#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "agent/skiffctl/args.h"
#include "skiff/v1/agent.grpc.pb.h"

namespace skiff::skiffctl {

struct Context {
  std::unique_ptr<v1::Agent::Stub> stub;
  bool json = false;
  std::ostream* out = &std::cout;
  std::ostream* err = &std::cerr;
};

int Run(Context& ctx, Args args);
int Ps(Context& ctx, Args args);
int Inspect(Context& ctx, Args args);
int Stop(Context& ctx, Args args);
int Rm(Context& ctx, Args args);
int Logs(Context& ctx, Args args);
int Events(Context& ctx, Args args);
int Pull(Context& ctx, Args args);
int Images(Context& ctx, Args args);
int Rmi(Context& ctx, Args args);
int Node(Context& ctx, Args args);
// service put|ls|rm|stats (service_commands.cc).
int Service(Context& ctx, Args args);

// Shared by the subcommands.
int RpcError(Context& ctx, const grpc::Status& status);
int UsageError(Context& ctx, const std::string& message);
// `service put NAME IMAGE [run's options but --job/--task-*] [--min N] [--max N]
// [--idle-timeout D] [--max-queue N] [--queue-timeout D] [-- ARGS]` → the request.
// InvalidArgument naming the flag.
absl::StatusOr<v1::PutServiceRequest> ParseServicePut(Args args);
// A table (or JSON objects) of services; a table of one stats snapshot.
void PrintServices(Context& ctx, const std::vector<v1::Service>& services);
void PrintServiceStats(Context& ctx, const v1::ServiceStatsList& list);
// protobuf JSON of `message` on one line (for streams) or indented.
std::string ToJson(const google::protobuf::Message& message, bool one_line);

}  // namespace skiff::skiffctl
