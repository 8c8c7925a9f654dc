#pragma once

// The skiff.v1.Agent gRPC service (proto/skiff/v1/agent.proto): a thin layer that
// checks requests, calls the InstanceController or the ImageStore, and converts
// results and errors at the boundary. Streaming RPCs poll for cancellation so a client
// that goes away, or a server shutdown, ends them promptly.

#include <grpcpp/grpcpp.h>

#include <atomic>

#include "agent/ingress/activator.h"
#include "agent/instances/event_bus.h"
#include "agent/instances/instance_controller.h"
#include "images/image_store.h"
#include "skiff/v1/agent.grpc.pb.h"

namespace skiff::agent {

class AgentService final : public v1::Agent::Service {
 public:
  // Borrows everything; all must outlive the service.
  AgentService(InstanceController* instances, images::ImageStore* images, EventBus* events)
      : instances_(instances), images_(images), events_(events) {}

  // The ingress's services (borrowed; must outlive the service). Unset (null): the four
  // service RPCs answer UNIMPLEMENTED and GetNode reports no services. Set it before the
  // server starts serving.
  void SetServiceActivator(ingress::ServiceActivator* activator) { activator_.store(activator); }

  grpc::Status CreateInstance(grpc::ServerContext* ctx, const v1::CreateInstanceRequest* req,
                              v1::Instance* resp) override;
  grpc::Status StopInstance(grpc::ServerContext* ctx, const v1::StopInstanceRequest* req,
                            v1::Instance* resp) override;
  grpc::Status DeleteInstance(grpc::ServerContext* ctx, const v1::DeleteInstanceRequest* req,
                              v1::DeleteInstanceResponse* resp) override;
  grpc::Status GetInstance(grpc::ServerContext* ctx, const v1::GetInstanceRequest* req,
                           v1::Instance* resp) override;
  grpc::Status ListInstances(grpc::ServerContext* ctx, const v1::ListInstancesRequest* req,
                             v1::ListInstancesResponse* resp) override;
  grpc::Status WatchEvents(grpc::ServerContext* ctx, const v1::WatchEventsRequest* req,
                           grpc::ServerWriter<v1::Event>* writer) override;
  grpc::Status StreamLogs(grpc::ServerContext* ctx, const v1::StreamLogsRequest* req,
                          grpc::ServerWriter<v1::LogEntry>* writer) override;
  grpc::Status PullImage(grpc::ServerContext* ctx, const v1::PullImageRequest* req,
                         grpc::ServerWriter<v1::PullProgress>* writer) override;
  grpc::Status ListImages(grpc::ServerContext* ctx, const v1::ListImagesRequest* req,
                          v1::ListImagesResponse* resp) override;
  grpc::Status RemoveImage(grpc::ServerContext* ctx, const v1::RemoveImageRequest* req,
                           v1::RemoveImageResponse* resp) override;
  grpc::Status GetNode(grpc::ServerContext* ctx, const v1::GetNodeRequest* req,
                       v1::Node* resp) override;

  grpc::Status PutService(grpc::ServerContext* ctx, const v1::PutServiceRequest* req,
                          v1::Service* resp) override;
  grpc::Status DeleteService(grpc::ServerContext* ctx, const v1::DeleteServiceRequest* req,
                             v1::DeleteServiceResponse* resp) override;
  grpc::Status ListServices(grpc::ServerContext* ctx, const v1::ListServicesRequest* req,
                            v1::ListServicesResponse* resp) override;
  grpc::Status WatchServiceStats(grpc::ServerContext* ctx, const v1::WatchServiceStatsRequest* req,
                                 grpc::ServerWriter<v1::ServiceStatsList>* writer) override;

 private:
  InstanceController* const instances_;
  images::ImageStore* const images_;
  EventBus* const events_;
  std::atomic<ingress::ServiceActivator*> activator_{nullptr};
};

}  // namespace skiff::agent
