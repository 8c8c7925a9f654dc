// skiffctl: the command-line client of skiffd's gRPC API.
//   skiffctl [--socket PATH] [--json] COMMAND [ARGS...]

#include <grpcpp/grpcpp.h>

#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "agent/skiffctl/commands.h"

namespace {

constexpr char kUsage[] = R"(usage: skiffctl [--socket PATH] [--json] COMMAND [ARGS...]

commands:
  run IMAGE [--id ID] [--port N] [--memory 256Mi] [--cpu 500m] [--env K=V]...
            [--label k=v]... [--job] [--task-index N] [--task-count N] [--task-attempt N]
            [--grace 10s] [--startup-timeout 240s] [--gen 1|2] [--user U] [--workdir DIR]
            [--entrypoint PROG] [--concurrency N] [--cpu-allocation request|instance]
            [--cpu-boost] [--request-timeout 300s] [--wait-ready] [-- ARGS...]
  ps [-l SELECTOR]          list instances (selector: k=v,k!=v,k,!k)
  inspect ID                the instance as JSON
  stop ID [--grace 2s]      SIGTERM, grace, SIGKILL; waits for the exit
  rm [-f] ID...             delete exited instances (-f: stop first)
  logs [-f] ID              stdout/stderr; -f follows until the instance exits
  events [ID]               lifecycle events as they happen
  pull IMAGE                pull an image, with progress
  images                    list pulled images
  rmi IMAGE                 remove an image
  node                      node capacity and allocation
  service put NAME IMAGE [run's options but --id/--job/--task-*/--wait-ready]
            [--min N] [--max N] [--idle-timeout 60s] [--max-queue N] [--queue-timeout 30s]
            [-- ARGS...]        create or replace a service (scaled on demand)
  service ls                list services
  service rm NAME...        stop a service's instances and delete it
  service stats [-w] [--interval 1s]
                            per-service load (-w: keep printing)

--socket defaults to $SKIFF_SOCKET or /run/skiff/skiffd.sock.
)";

}  // namespace

int main(int argc, char** argv) {
  using namespace skiff::skiffctl;
  std::vector<std::string> args(argv + 1, argv + argc);
  const char* env_socket = getenv("SKIFF_SOCKET");
  std::string socket = env_socket != nullptr ? env_socket : "/run/skiff/skiffd.sock";
  Context ctx;
  size_t i = 0;
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--json") {
      ctx.json = true;
    } else if (a == "--socket" && i + 1 < args.size()) {
      socket = args[++i];
    } else if (a.rfind("--socket=", 0) == 0) {
      socket = a.substr(9);
    } else if (a == "-h" || a == "--help" || a == "help") {
      std::cout << kUsage;
      return 0;
    } else {
      break;
    }
  }
  if (i >= args.size()) {
    std::cerr << kUsage;
    return 2;
  }
  const std::string command = args[i];
  Args rest(std::vector<std::string>(args.begin() + static_cast<long>(i) + 1, args.end()));
  // --json is accepted after the command too.
  if (rest.Switch("--json")) ctx.json = true;

  static const std::map<std::string, int (*)(Context&, Args)> kCommands = {
      {"run", Run},       {"ps", Ps},     {"inspect", Inspect}, {"stop", Stop},
      {"rm", Rm},         {"logs", Logs}, {"events", Events},   {"pull", Pull},
      {"images", Images}, {"rmi", Rmi},   {"node", Node},       {"service", Service}};
  auto it = kCommands.find(command);
  if (it == kCommands.end()) {
    std::cerr << "skiffctl: unknown command \"" << command << "\"\n" << kUsage;
    return 2;
  }
  ctx.stub = skiff::v1::Agent::NewStub(
      grpc::CreateChannel("unix:" + socket, grpc::InsecureChannelCredentials()));
  return it->second(ctx, std::move(rest));
}
