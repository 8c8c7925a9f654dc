// skiffctl service put|ls|rm|stats: the ingress's services.

#include <google/protobuf/util/time_util.h>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "agent/skiffctl/commands.h"
#include "agent/skiffctl/quantity.h"
#include "agent/skiffctl/spec_options.h"
#include "agent/skiffctl/table.h"
#include "sandbox/common/status.h"

namespace skiff::skiffctl {
namespace {

using google::protobuf::util::TimeUtil;

std::string ShortDuration(const google::protobuf::Duration& d) {
  if (d.seconds() == 0 && d.nanos() == 0) return "0";
  return absl::FormatDuration(absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos()));
}

int ServicePut(Context& ctx, Args args) {
  absl::StatusOr<v1::PutServiceRequest> req = ParseServicePut(std::move(args));
  if (!req.ok()) return UsageError(ctx, absl::StrCat("service put: ", req.status().message()));
  v1::Service stored;
  grpc::ClientContext cctx;
  grpc::Status st = ctx.stub->PutService(&cctx, *req, &stored);
  if (!st.ok()) return RpcError(ctx, st);
  PrintServices(ctx, {stored});
  return 0;
}

int ServiceLs(Context& ctx, Args args) {
  auto pos = args.Positionals();
  if (!pos.ok() || !pos->empty()) return UsageError(ctx, "service ls: takes no arguments");
  v1::ListServicesResponse resp;
  grpc::ClientContext cctx;
  grpc::Status st = ctx.stub->ListServices(&cctx, v1::ListServicesRequest(), &resp);
  if (!st.ok()) return RpcError(ctx, st);
  if (ctx.json) {
    *ctx.out << ToJson(resp, false) << "\n";
    return 0;
  }
  PrintServices(ctx, {resp.services().begin(), resp.services().end()});
  return 0;
}

int ServiceRm(Context& ctx, Args args) {
  auto pos = args.Positionals();
  if (!pos.ok() || pos->empty()) return UsageError(ctx, "service rm: want at least one NAME");
  int rc = 0;
  for (const std::string& name : *pos) {
    v1::DeleteServiceRequest req;
    req.set_name(name);
    v1::DeleteServiceResponse resp;
    grpc::ClientContext cctx;
    grpc::Status st = ctx.stub->DeleteService(&cctx, req, &resp);
    if (!st.ok()) {
      rc = RpcError(ctx, st);
      continue;
    }
    if (!ctx.json) *ctx.out << name << "\n";
  }
  return rc;
}

int ServiceStats(Context& ctx, Args args) {
  const bool watch = args.Switch("--watch", "-w");
  auto interval = args.Value("--interval", "-n");
  if (!interval.ok()) {
    return UsageError(ctx, absl::StrCat("service stats: ", interval.status().message()));
  }
  auto pos = args.Positionals();
  if (!pos.ok() || !pos->empty()) {
    return UsageError(ctx, "service stats: takes no arguments but [-w] [--interval 1s]");
  }
  v1::WatchServiceStatsRequest req;
  if (*interval) {
    auto d = ParseDurationFlag("interval", **interval);
    if (!d.ok()) return UsageError(ctx, absl::StrCat("service stats: ", d.status().message()));
    *req.mutable_interval() = DurationToProto(*d);
  }
  grpc::ClientContext cctx;
  auto reader = ctx.stub->WatchServiceStats(&cctx, req);
  v1::ServiceStatsList list;
  bool first = true;
  while (reader->Read(&list)) {
    if (ctx.json) {
      *ctx.out << ToJson(list, /*one_line=*/watch) << "\n";
    } else {
      if (watch) *ctx.out << (first ? "" : "\n") << TimeUtil::ToString(list.time()) << "\n";
      PrintServiceStats(ctx, list);
    }
    ctx.out->flush();
    first = false;
    if (!watch) {
      cctx.TryCancel();
      break;
    }
  }
  grpc::Status st = reader->Finish();
  // Our own TryCancel ends the stream with CANCELLED: that is success.
  if (!st.ok() && !(st.error_code() == grpc::StatusCode::CANCELLED && !first)) {
    return RpcError(ctx, st);
  }
  return 0;
}

}  // namespace

absl::StatusOr<v1::PutServiceRequest> ParseServicePut(Args args) {
  v1::PutServiceRequest req;
  v1::Service* s = req.mutable_service();
  SKIFF_ASSIGN_OR_RETURN(auto min, args.Value("--min"));
  SKIFF_ASSIGN_OR_RETURN(auto max, args.Value("--max"));
  SKIFF_ASSIGN_OR_RETURN(auto idle_timeout, args.Value("--idle-timeout"));
  SKIFF_ASSIGN_OR_RETURN(auto max_queue, args.Value("--max-queue"));
  SKIFF_ASSIGN_OR_RETURN(auto queue_timeout, args.Value("--queue-timeout"));
  SKIFF_RETURN_IF_ERROR(
      ParseSpecOptions(args, s->mutable_template_(), SpecOptionSet{.job_options = false}));
  SKIFF_ASSIGN_OR_RETURN(std::vector<std::string> pos, args.Positionals());
  if (pos.size() != 2) return absl::InvalidArgumentError("want NAME IMAGE");
  s->set_name(pos[0]);
  s->mutable_template_()->set_image(pos[1]);
  for (auto [opt, name, setter] :
       {std::tuple{&min, "--min", &v1::Service::set_min_instances},
        std::tuple{&max, "--max", &v1::Service::set_max_instances},
        std::tuple{&max_queue, "--max-queue", &v1::Service::set_max_queue}}) {
    if (!*opt) continue;
    SKIFF_ASSIGN_OR_RETURN(uint32_t v, ParseUint(name, **opt));
    (s->*setter)(v);
  }
  if (idle_timeout) {
    SKIFF_ASSIGN_OR_RETURN(absl::Duration d, ParseDurationFlag("idle-timeout", *idle_timeout));
    *s->mutable_idle_timeout() = DurationToProto(d);
  }
  if (queue_timeout) {
    SKIFF_ASSIGN_OR_RETURN(absl::Duration d, ParseDurationFlag("queue-timeout", *queue_timeout));
    *s->mutable_queue_timeout() = DurationToProto(d);
  }
  return req;
}

void PrintServices(Context& ctx, const std::vector<v1::Service>& services) {
  if (ctx.json) {
    for (const v1::Service& s : services) *ctx.out << ToJson(s, false) << "\n";
    return;
  }
  Table t({"NAME", "IMAGE", "MIN", "MAX", "CONCURRENCY", "IDLE", "QUEUE", "QUEUE-TIMEOUT"});
  for (const v1::Service& s : services) {
    t.AddRow({s.name(), s.template_().image(), absl::StrCat(s.min_instances()),
              absl::StrCat(s.max_instances()), absl::StrCat(s.template_().concurrency()),
              ShortDuration(s.idle_timeout()), absl::StrCat(s.max_queue()),
              ShortDuration(s.queue_timeout())});
  }
  t.Print(*ctx.out);
}

void PrintServiceStats(Context& ctx, const v1::ServiceStatsList& list) {
  Table t({"NAME", "READY", "STARTING", "DRAINING", "IN-FLIGHT", "QUEUED", "DESIRED", "COLD-STARTS",
           "REQUESTS", "LAST-START-ERROR"});
  for (const v1::ServiceStats& s : list.services()) {
    t.AddRow({s.name(), absl::StrCat(s.ready()), absl::StrCat(s.starting()),
              absl::StrCat(s.draining()), absl::StrCat(s.in_flight()), absl::StrCat(s.queued()),
              absl::StrCat(s.desired()), absl::StrCat(s.cold_starts()), absl::StrCat(s.requests()),
              s.last_start_error()});
  }
  t.Print(*ctx.out);
}

int Service(Context& ctx, Args args) {
  const std::string usage = "service: want put|ls|rm|stats";
  // The subcommand is the first argument; everything after it belongs to it.
  if (!args.First().has_value()) return UsageError(ctx, usage);
  const std::string sub = *args.First();
  Args sub_args = args.Rest();
  if (sub == "put") return ServicePut(ctx, std::move(sub_args));
  if (sub == "ls" || sub == "list") return ServiceLs(ctx, std::move(sub_args));
  if (sub == "rm" || sub == "delete") return ServiceRm(ctx, std::move(sub_args));
  if (sub == "stats") return ServiceStats(ctx, std::move(sub_args));
  return UsageError(ctx, absl::StrCat(usage, ", got \"", sub, "\""));
}

}  // namespace skiff::skiffctl
