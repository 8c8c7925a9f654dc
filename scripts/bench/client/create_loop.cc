// skiff-bench-create: a persistent gRPC client for scripts/bench/create-ready, the way a
// scheduler drives skiffd (one channel, many creates), so the benchmark measures the
// agent rather than a CLI's process start-up.
//
// For each line read on stdin it creates instance "<prefix>-<n>" from --image, waits for
// its READY event on a WatchEvents stream opened beforehand, prints
// "<wall_ms> <agent_created_to_ready_ms> <ip>" and deletes the instance (force).
// EOF on stdin ends it.

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>

#include "google/protobuf/util/time_util.h"
#include "skiff/v1/agent.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;
using google::protobuf::util::TimeUtil;

std::string Flag(int argc, char** argv, const std::string& name, const std::string& def) {
  const std::string prefix = "--" + name + "=";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind(prefix, 0) == 0) return a.substr(prefix.size());
  }
  return def;
}

int Fail(const std::string& what, const grpc::Status& s) {
  std::fprintf(stderr, "skiff-bench-create: %s: %s\n", what.c_str(), s.error_message().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string socket = Flag(argc, argv, "socket", "/run/skiff/skiffd.sock");
  const std::string image = Flag(argc, argv, "image", "");
  const std::string prefix = Flag(argc, argv, "prefix", "bench");
  const uint64_t memory = std::stoull(Flag(argc, argv, "memory-bytes", "67108864"));
  if (image.empty()) {
    std::fprintf(stderr, "usage: skiff-bench-create --socket=PATH --image=REF\n");
    return 2;
  }
  auto stub = skiff::v1::Agent::NewStub(
      grpc::CreateChannel("unix://" + socket, grpc::InsecureChannelCredentials()));

  std::string line;
  for (int n = 0; std::getline(std::cin, line); ++n) {
    const std::string id = prefix + "-" + std::to_string(n);
    grpc::ClientContext wctx;
    skiff::v1::WatchEventsRequest wreq;
    wreq.set_instance_id(id);
    auto events = stub->WatchEvents(&wctx, wreq);
    // WatchEvents delivers from registration on: make sure the server has it.
    events->WaitForInitialMetadata();

    const auto t0 = Clock::now();
    grpc::ClientContext cctx;
    skiff::v1::CreateInstanceRequest req;
    req.set_instance_id(id);
    req.mutable_spec()->set_image(image);
    req.mutable_spec()->set_memory_bytes(memory);
    req.mutable_spec()->set_vcpus_milli(1000);
    skiff::v1::Instance inst;
    grpc::Status s = stub->CreateInstance(&cctx, req, &inst);
    if (!s.ok()) return Fail("CreateInstance(" + id + ")", s);
    bool ready = inst.state() == skiff::v1::READY;
    skiff::v1::Event ev;
    while (!ready && events->Read(&ev)) {
      if (ev.type() == skiff::v1::Event::READY) ready = true;
      if (ev.type() == skiff::v1::Event::EXITED) break;
    }
    const auto t1 = Clock::now();
    wctx.TryCancel();
    (void)events->Finish();
    if (!ready) {
      std::fprintf(stderr, "skiff-bench-create: %s exited before READY\n", id.c_str());
      return 1;
    }
    grpc::ClientContext gctx;
    skiff::v1::GetInstanceRequest greq;
    greq.set_instance_id(id);
    s = stub->GetInstance(&gctx, greq, &inst);
    if (!s.ok()) return Fail("GetInstance(" + id + ")", s);
    const double agent_ms =
        TimeUtil::DurationToMicroseconds(inst.ready_at() - inst.created_at()) / 1000.0;
    const double wall_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
    std::printf("%.3f %.3f %s\n", wall_ms, agent_ms, inst.ip().c_str());
    std::fflush(stdout);

    grpc::ClientContext dctx;
    skiff::v1::DeleteInstanceRequest dreq;
    dreq.set_instance_id(id);
    dreq.set_force(true);
    skiff::v1::DeleteInstanceResponse dresp;
    s = stub->DeleteInstance(&dctx, dreq, &dresp);
    if (!s.ok()) return Fail("DeleteInstance(" + id + ")", s);
  }
  return 0;
}
