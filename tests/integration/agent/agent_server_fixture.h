#pragma once

// An in-process skiffd: the real AgentService and InstanceController behind a real gRPC
// server on a temp Unix socket, over the fake runtime and image store.

#include <grpcpp/grpcpp.h>

#include "agent/api/agent_service.h"
#include "tests/support/status_matchers.h"
#include "tests/unit/agent/agent_fakes.h"

namespace skiff::agent::testing {

inline constexpr char kHelloImage[] = "127.0.0.1:5000/hello:latest";

class AgentServerTest : public ::testing::Test {
 protected:
  AgentServerTest() : images_(tmp_.path() + "/images") {
    state_dir_ = tmp_.path() + "/state";
    socket_ = tmp_.path() + "/skiffd.sock";
    images::ImageConfig config;
    config.cmd = {"/bin/httpd", "-f", "-p", "8080"};
    images_.AddRemote(kHelloImage, config, {{"etc/passwd", "root:x:0:0::/:/bin/sh\n"}});
    pool_ = *IpPool::Create("10.88.0.0/16");
    ControllerOptions opts;
    opts.state_dir = state_dir_;
    opts.capacity = {2000, 2ull << 30};
    controller_ =
        std::make_unique<InstanceController>(opts, &images_, &runtime_, pool_.get(), &bus_);
    service_ = std::make_unique<AgentService>(controller_.get(), &images_, &bus_);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix:" + socket_, grpc::InsecureServerCredentials());
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    channel_ = grpc::CreateChannel("unix:" + socket_, grpc::InsecureChannelCredentials());
    stub_ = v1::Agent::NewStub(channel_);
  }

  ~AgentServerTest() override {
    controller_->Shutdown();
    bus_.CloseAll();
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    server_->Wait();
    controller_.reset();
  }

  v1::InstanceSpec Spec() {
    v1::InstanceSpec spec;
    spec.set_image(kHelloImage);
    spec.set_memory_bytes(128 << 20);
    return spec;
  }

  std::string Dir(const std::string& id) { return state_dir_ + "/instances/" + id; }

  TempDir tmp_;
  std::string state_dir_;
  std::string socket_;
  FakeImageStore images_;
  FakeRuntime runtime_;
  std::unique_ptr<IpPool> pool_;
  EventBus bus_;
  std::unique_ptr<InstanceController> controller_;
  std::unique_ptr<AgentService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Agent::Stub> stub_;
};

}  // namespace skiff::agent::testing
