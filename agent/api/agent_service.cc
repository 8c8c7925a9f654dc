#include "agent/api/agent_service.h"

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "agent/api/grpc_status.h"
#include "agent/instances/console_log_reader.h"
#include "agent/instances/instance_id.h"
#include "google/protobuf/util/time_util.h"

namespace skiff::agent {
namespace {

using google::protobuf::util::TimeUtil;

// How often streaming RPCs look for client cancellation while idle.
constexpr absl::Duration kPollInterval = absl::Milliseconds(100);

absl::Status CheckId(const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError("instance_id: required");
  return ValidateInstanceId(id);
}

absl::Status CheckImageRef(const std::string& ref) {
  if (ref.empty()) return absl::InvalidArgumentError("image: required");
  if (ref.size() > 4096) return absl::InvalidArgumentError("image: longer than 4096 bytes");
  return absl::OkStatus();
}

v1::Image ToProto(const images::Image& image) {
  v1::Image out;
  for (const auto& r : image.references) out.add_references(r);
  out.set_digest(image.manifest_digest);
  out.set_size_bytes(image.size_bytes);
  out.set_layers(static_cast<uint32_t>(image.layer_dirs.size()));
  *out.mutable_pulled_at() = TimeUtil::SecondsToTimestamp(image.pulled_unix_s);
  return out;
}

v1::PullProgress ToProto(const std::string& ref, const images::PullProgress& p) {
  v1::PullProgress out;
  out.set_image(ref);
  out.set_digest(p.manifest_digest);
  out.set_total_bytes(p.total_bytes);
  out.set_done_bytes(p.done_bytes);
  out.set_layers_total(p.layers_total);
  out.set_layers_done(p.layers_done);
  out.set_phase(p.phase);
  out.set_done(p.phase == "done");
  return out;
}

// The service RPCs without an ingress.
grpc::Status IngressDisabled() {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                      "the ingress is disabled (skiffd --ingress-listen is empty)");
}

constexpr absl::Duration kDefaultStatsInterval = absl::Seconds(1);
constexpr absl::Duration kMinStatsInterval = absl::Milliseconds(100);
constexpr absl::Duration kMaxStatsInterval = absl::Seconds(60);

absl::StatusOr<absl::Duration> StatsInterval(const v1::WatchServiceStatsRequest& req) {
  if (!req.has_interval()) return kDefaultStatsInterval;
  const auto& d = req.interval();
  const absl::Duration v = absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
  if (d.nanos() < 0 || d.nanos() >= 1000000000 || v < kMinStatsInterval || v > kMaxStatsInterval) {
    return absl::InvalidArgumentError(
        absl::StrCat("interval: ", absl::FormatDuration(v), " out of range 100ms..60s"));
  }
  return v;
}

}  // namespace

grpc::Status AgentService::CreateInstance(grpc::ServerContext*,
                                          const v1::CreateInstanceRequest* req,
                                          v1::Instance* resp) {
  absl::StatusOr<v1::Instance> inst = instances_->Create(req->instance_id(), req->spec());
  if (!inst.ok()) return ToGrpcStatus(inst.status());
  *resp = std::move(*inst);
  return grpc::Status::OK;
}

grpc::Status AgentService::StopInstance(grpc::ServerContext*, const v1::StopInstanceRequest* req,
                                        v1::Instance* resp) {
  if (absl::Status st = CheckId(req->instance_id()); !st.ok()) return ToGrpcStatus(st);
  std::optional<absl::Duration> grace;
  if (req->has_grace()) {
    const auto& g = req->grace();
    if (g.seconds() < 0 || g.nanos() < 0 || g.nanos() >= 1000000000 || g.seconds() > 3600) {
      return ToGrpcStatus(absl::InvalidArgumentError(
          absl::StrCat("grace: ", g.seconds(), "s out of range 0s..3600s")));
    }
    grace = absl::Seconds(g.seconds()) + absl::Nanoseconds(g.nanos());
  }
  absl::StatusOr<v1::Instance> inst = instances_->Stop(req->instance_id(), grace);
  if (!inst.ok()) return ToGrpcStatus(inst.status());
  *resp = std::move(*inst);
  return grpc::Status::OK;
}

grpc::Status AgentService::DeleteInstance(grpc::ServerContext*,
                                          const v1::DeleteInstanceRequest* req,
                                          v1::DeleteInstanceResponse*) {
  if (absl::Status st = CheckId(req->instance_id()); !st.ok()) return ToGrpcStatus(st);
  return ToGrpcStatus(instances_->Delete(req->instance_id(), req->force()));
}

grpc::Status AgentService::GetInstance(grpc::ServerContext*, const v1::GetInstanceRequest* req,
                                       v1::Instance* resp) {
  if (absl::Status st = CheckId(req->instance_id()); !st.ok()) return ToGrpcStatus(st);
  absl::StatusOr<v1::Instance> inst = instances_->Get(req->instance_id());
  if (!inst.ok()) return ToGrpcStatus(inst.status());
  *resp = std::move(*inst);
  return grpc::Status::OK;
}

grpc::Status AgentService::ListInstances(grpc::ServerContext*, const v1::ListInstancesRequest* req,
                                         v1::ListInstancesResponse* resp) {
  absl::StatusOr<std::vector<v1::Instance>> list = instances_->List(req->label_selector());
  if (!list.ok()) return ToGrpcStatus(list.status());
  for (auto& inst : *list) *resp->add_instances() = std::move(inst);
  return grpc::Status::OK;
}

grpc::Status AgentService::WatchEvents(grpc::ServerContext* ctx, const v1::WatchEventsRequest* req,
                                       grpc::ServerWriter<v1::Event>* writer) {
  if (!req->instance_id().empty()) {
    if (absl::Status st = ValidateInstanceId(req->instance_id()); !st.ok()) {
      return ToGrpcStatus(st);
    }
  }
  std::shared_ptr<EventSubscription> sub = events_->Subscribe(req->instance_id());
  // Response headers go out now, so the client knows it is subscribed.
  writer->SendInitialMetadata();
  while (!ctx->IsCancelled()) {
    absl::StatusOr<std::optional<v1::Event>> next = sub->Next(kPollInterval);
    if (!next.ok()) {
      sub->Close();
      return absl::IsCancelled(next.status()) ? grpc::Status::OK : ToGrpcStatus(next.status());
    }
    if (next->has_value() && !writer->Write(**next)) break;
  }
  sub->Close();
  return grpc::Status::OK;
}

grpc::Status AgentService::StreamLogs(grpc::ServerContext* ctx, const v1::StreamLogsRequest* req,
                                      grpc::ServerWriter<v1::LogEntry>* writer) {
  if (absl::Status st = CheckId(req->instance_id()); !st.ok()) return ToGrpcStatus(st);
  absl::StatusOr<std::string> path = instances_->ConsoleLogPath(req->instance_id());
  if (!path.ok()) return ToGrpcStatus(path.status());
  std::optional<ConsoleLogReader> reader;
  for (;;) {
    // Whether the instance had exited before this read: then the read is the last.
    const bool exited =
        !req->follow() || instances_->WaitForExit(req->instance_id(), absl::ZeroDuration());
    if (!reader.has_value()) {
      absl::StatusOr<ConsoleLogReader> opened = ConsoleLogReader::Open(*path);
      if (opened.ok()) {
        reader.emplace(std::move(*opened));
      } else if (!absl::IsNotFound(opened.status())) {
        return ToGrpcStatus(opened.status());
      }
    }
    if (reader.has_value()) {
      absl::StatusOr<std::vector<CriRecord>> records = reader->ReadAvailable();
      if (!records.ok()) return ToGrpcStatus(records.status());
      for (CriRecord& rec : *records) {
        v1::LogEntry entry;
        entry.set_stream(rec.is_stderr ? v1::LogEntry::STDERR : v1::LogEntry::STDOUT);
        *entry.mutable_time() = TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(rec.time));
        entry.set_line(std::move(rec.line));
        entry.set_partial(rec.partial);
        if (!writer->Write(entry)) return grpc::Status::OK;
      }
      if (!records->empty()) continue;  // drain before waiting
    }
    if (exited || ctx->IsCancelled()) return grpc::Status::OK;
    instances_->WaitForExit(req->instance_id(), kPollInterval);
  }
}

grpc::Status AgentService::PullImage(grpc::ServerContext* ctx, const v1::PullImageRequest* req,
                                     grpc::ServerWriter<v1::PullProgress>* writer) {
  if (absl::Status st = CheckImageRef(req->image()); !st.ok()) return ToGrpcStatus(st);
  // The store may report progress from several fetch threads; writes are serialized.
  absl::Mutex write_mu;
  bool client_gone = false;
  bool sent_done = false;
  absl::StatusOr<images::Image> image =
      images_->Pull(req->image(), [&](const images::PullProgress& p) {
        absl::MutexLock lock(&write_mu);
        if (client_gone || sent_done || ctx->IsCancelled()) return;
        if (!writer->Write(ToProto(req->image(), p))) client_gone = true;
        sent_done = p.phase == "done";
      });
  if (!image.ok()) return ToGrpcStatus(image.status());
  // Exactly one final message with done = true, whether or not the store sent one.
  if (client_gone || sent_done) return grpc::Status::OK;
  v1::PullProgress done;
  done.set_image(req->image());
  done.set_digest(image->manifest_digest);
  done.set_total_bytes(image->size_bytes);
  done.set_done_bytes(image->size_bytes);
  done.set_layers_total(static_cast<uint32_t>(image->layer_dirs.size()));
  done.set_layers_done(static_cast<uint32_t>(image->layer_dirs.size()));
  done.set_phase("done");
  done.set_done(true);
  writer->Write(done);
  return grpc::Status::OK;
}

grpc::Status AgentService::ListImages(grpc::ServerContext*, const v1::ListImagesRequest*,
                                      v1::ListImagesResponse* resp) {
  for (const images::Image& image : images_->List()) *resp->add_images() = ToProto(image);
  return grpc::Status::OK;
}

grpc::Status AgentService::RemoveImage(grpc::ServerContext*, const v1::RemoveImageRequest* req,
                                       v1::RemoveImageResponse*) {
  if (absl::Status st = CheckImageRef(req->image()); !st.ok()) return ToGrpcStatus(st);
  return ToGrpcStatus(images_->Remove(req->image()));
}

grpc::Status AgentService::GetNode(grpc::ServerContext*, const v1::GetNodeRequest*,
                                   v1::Node* resp) {
  *resp = instances_->GetNode();
  if (ingress::ServiceActivator* activator = activator_.load(); activator != nullptr) {
    for (v1::ServiceStats& st : activator->Stats()) *resp->add_services() = std::move(st);
  }
  return grpc::Status::OK;
}

grpc::Status AgentService::PutService(grpc::ServerContext*, const v1::PutServiceRequest* req,
                                      v1::Service* resp) {
  ingress::ServiceActivator* activator = activator_.load();
  if (activator == nullptr) return IngressDisabled();
  if (!req->has_service()) {
    return ToGrpcStatus(absl::InvalidArgumentError("service: required"));
  }
  absl::StatusOr<v1::Service> stored = activator->Put(req->service());
  if (!stored.ok()) return ToGrpcStatus(stored.status());
  *resp = std::move(*stored);
  return grpc::Status::OK;
}

grpc::Status AgentService::DeleteService(grpc::ServerContext*, const v1::DeleteServiceRequest* req,
                                         v1::DeleteServiceResponse*) {
  ingress::ServiceActivator* activator = activator_.load();
  if (activator == nullptr) return IngressDisabled();
  if (req->name().empty()) return ToGrpcStatus(absl::InvalidArgumentError("name: required"));
  return ToGrpcStatus(activator->Delete(req->name()));
}

grpc::Status AgentService::ListServices(grpc::ServerContext*, const v1::ListServicesRequest*,
                                        v1::ListServicesResponse* resp) {
  ingress::ServiceActivator* activator = activator_.load();
  if (activator == nullptr) return IngressDisabled();
  for (v1::Service& s : activator->List()) *resp->add_services() = std::move(s);
  return grpc::Status::OK;
}

grpc::Status AgentService::WatchServiceStats(grpc::ServerContext* ctx,
                                             const v1::WatchServiceStatsRequest* req,
                                             grpc::ServerWriter<v1::ServiceStatsList>* writer) {
  ingress::ServiceActivator* activator = activator_.load();
  if (activator == nullptr) return IngressDisabled();
  absl::StatusOr<absl::Duration> interval = StatsInterval(*req);
  if (!interval.ok()) return ToGrpcStatus(interval.status());
  absl::Time next = absl::Now();
  while (!ctx->IsCancelled()) {
    const absl::Time now = absl::Now();
    if (now >= next) {
      v1::ServiceStatsList list;
      for (v1::ServiceStats& st : activator->Stats()) *list.add_services() = std::move(st);
      *list.mutable_time() = TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(now));
      if (!writer->Write(list)) break;
      next += *interval;
      if (next < now) next = now + *interval;  // fell behind: no burst of catch-up writes
      continue;
    }
    absl::SleepFor(std::min(kPollInterval, next - now));
  }
  return grpc::Status::OK;
}

}  // namespace skiff::agent
