// skiffctl run, ps, inspect, stop, rm, logs, events.

#include <google/protobuf/util/time_util.h>

#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "agent/skiffctl/commands.h"
#include "agent/skiffctl/quantity.h"
#include "agent/skiffctl/spec_options.h"
#include "agent/skiffctl/table.h"

namespace skiff::skiffctl {
namespace {

using google::protobuf::util::TimeUtil;

std::string StateName(v1::InstanceState s) {
  std::string n = v1::InstanceState_Name(s);
  return n.empty() ? absl::StrCat(static_cast<int>(s)) : n;
}

std::string ExitSummary(const v1::Instance& inst) {
  if (inst.state() != v1::EXITED) return "";
  std::string s =
      absl::StrCat(v1::ExitReason_Name(inst.exit().reason()), " code=", inst.exit().code());
  if (inst.exit().signal() != 0) absl::StrAppend(&s, " signal=", inst.exit().signal());
  return s;
}

std::string Age(const google::protobuf::Timestamp& ts) {
  if (ts.seconds() == 0) return "";
  const absl::Duration d = absl::Now() - absl::FromUnixSeconds(ts.seconds());
  if (d < absl::Minutes(1)) return absl::StrCat(absl::ToInt64Seconds(d), "s");
  if (d < absl::Hours(1)) return absl::StrCat(absl::ToInt64Minutes(d), "m");
  if (d < absl::Hours(48)) return absl::StrCat(absl::ToInt64Hours(d), "h");
  return absl::StrCat(absl::ToInt64Hours(d) / 24, "d");
}

void PrintInstance(Context& ctx, const v1::Instance& inst) {
  if (ctx.json) {
    *ctx.out << ToJson(inst, false) << "\n";
    return;
  }
  Table t({"ID", "STATE", "IP", "PORT", "PID", "IMAGE", "EXIT"});
  t.AddRow({inst.id(), StateName(inst.state()), inst.ip(), absl::StrCat(inst.port()),
            absl::StrCat(inst.pid()), inst.spec().image(), ExitSummary(inst)});
  t.Print(*ctx.out);
}

}  // namespace

int Run(Context& ctx, Args args) {
  v1::CreateInstanceRequest req;
  v1::InstanceSpec* spec = req.mutable_spec();
  const bool wait_ready = args.Switch("--wait-ready");
  auto id = args.Value("--id");
  if (!id.ok()) return UsageError(ctx, absl::StrCat("run: ", id.status().message()));
  if (absl::Status st = ParseSpecOptions(args, spec); !st.ok()) {
    return UsageError(ctx, absl::StrCat("run: ", st.message()));
  }
  auto positionals = args.Positionals();
  if (!positionals.ok()) {
    return UsageError(ctx, absl::StrCat("run: ", positionals.status().message()));
  }
  if (positionals->size() != 1) return UsageError(ctx, "run: want exactly one IMAGE");
  spec->set_image((*positionals)[0]);
  if (*id) req.set_instance_id(**id);

  // With --wait-ready, subscribe before creating so no event can be missed.
  grpc::ClientContext watch_ctx;
  std::unique_ptr<grpc::ClientReader<v1::Event>> watch;
  if (wait_ready) {
    // The id must be known before creating, to watch it: choose one like skiffd would.
    if (req.instance_id().empty()) {
      std::mt19937_64 rng{std::random_device{}()};
      req.set_instance_id(absl::StrFormat("i-%012x", rng() & 0xffffffffffffULL));
    }
    v1::WatchEventsRequest wreq;
    wreq.set_instance_id(req.instance_id());
    watch = ctx.stub->WatchEvents(&watch_ctx, wreq);
    watch->WaitForInitialMetadata();
  }
  grpc::ClientContext cctx;
  v1::Instance inst;
  grpc::Status st = ctx.stub->CreateInstance(&cctx, req, &inst);
  if (!st.ok()) {
    if (watch) watch_ctx.TryCancel();
    return RpcError(ctx, st);
  }
  if (wait_ready) {
    const bool want_exit = spec->kind() == v1::JOB;
    bool done = inst.state() == v1::EXITED || (!want_exit && inst.state() == v1::READY);
    v1::Event ev;
    while (!done && watch->Read(&ev)) {
      done = ev.type() == v1::Event::EXITED || (!want_exit && ev.type() == v1::Event::READY);
    }
    watch_ctx.TryCancel();
    grpc::ClientContext gctx;
    v1::GetInstanceRequest greq;
    greq.set_instance_id(inst.id());
    st = ctx.stub->GetInstance(&gctx, greq, &inst);
    if (!st.ok()) return RpcError(ctx, st);
  }
  if (ctx.json) {
    *ctx.out << ToJson(inst, false) << "\n";
  } else {
    *ctx.out << inst.id() << " " << StateName(inst.state()) << " " << inst.ip() << ":"
             << inst.port() << "\n";
  }
  if (wait_ready && inst.state() == v1::EXITED &&
      (spec->kind() != v1::JOB || inst.exit().code() != 0)) {
    *ctx.err << "skiffctl: instance " << inst.id() << " exited: " << ExitSummary(inst) << " "
             << inst.exit().message() << "\n";
    return 1;
  }
  return 0;
}

int Ps(Context& ctx, Args args) {
  auto selector = args.Value("--selector", "-l");
  auto pos = args.Positionals();
  if (!selector.ok()) return UsageError(ctx, std::string(selector.status().message()));
  if (!pos.ok() || !pos->empty()) return UsageError(ctx, "ps: takes no arguments");
  v1::ListInstancesRequest req;
  if (*selector) req.set_label_selector(**selector);
  v1::ListInstancesResponse resp;
  grpc::ClientContext cctx;
  grpc::Status st = ctx.stub->ListInstances(&cctx, req, &resp);
  if (!st.ok()) return RpcError(ctx, st);
  if (ctx.json) {
    *ctx.out << ToJson(resp, false) << "\n";
    return 0;
  }
  Table t({"ID", "STATE", "IMAGE", "ADDRESS", "PID", "AGE", "EXIT"});
  for (const auto& inst : resp.instances()) {
    t.AddRow({inst.id(), StateName(inst.state()), inst.spec().image(),
              absl::StrCat(inst.ip(), ":", inst.port()), absl::StrCat(inst.pid()),
              Age(inst.created_at()), ExitSummary(inst)});
  }
  t.Print(*ctx.out);
  return 0;
}

int Inspect(Context& ctx, Args args) {
  auto pos = args.Positionals();
  if (!pos.ok() || pos->size() != 1) return UsageError(ctx, "inspect: want exactly one ID");
  v1::GetInstanceRequest req;
  req.set_instance_id((*pos)[0]);
  v1::Instance inst;
  grpc::ClientContext cctx;
  grpc::Status st = ctx.stub->GetInstance(&cctx, req, &inst);
  if (!st.ok()) return RpcError(ctx, st);
  *ctx.out << ToJson(inst, false) << "\n";  // always JSON, like docker inspect
  return 0;
}

int Stop(Context& ctx, Args args) {
  auto grace = args.Value("--grace", "-t");
  auto pos = args.Positionals();
  if (!grace.ok()) return UsageError(ctx, std::string(grace.status().message()));
  if (!pos.ok() || pos->size() != 1) return UsageError(ctx, "stop: want exactly one ID");
  v1::StopInstanceRequest req;
  req.set_instance_id((*pos)[0]);
  if (*grace) {
    auto d = ParseDurationFlag("grace", **grace);
    if (!d.ok()) return UsageError(ctx, std::string(d.status().message()));
    *req.mutable_grace() = DurationToProto(*d);
  }
  v1::Instance inst;
  grpc::ClientContext cctx;
  grpc::Status st = ctx.stub->StopInstance(&cctx, req, &inst);
  if (!st.ok()) return RpcError(ctx, st);
  PrintInstance(ctx, inst);
  return 0;
}

int Rm(Context& ctx, Args args) {
  const bool force = args.Switch("--force", "-f");
  auto pos = args.Positionals();
  if (!pos.ok() || pos->empty()) return UsageError(ctx, "rm: want at least one ID");
  int rc = 0;
  for (const std::string& id : *pos) {
    v1::DeleteInstanceRequest req;
    req.set_instance_id(id);
    req.set_force(force);
    v1::DeleteInstanceResponse resp;
    grpc::ClientContext cctx;
    grpc::Status st = ctx.stub->DeleteInstance(&cctx, req, &resp);
    if (!st.ok()) {
      rc = RpcError(ctx, st);
      continue;
    }
    if (!ctx.json) *ctx.out << id << "\n";
  }
  return rc;
}

int Logs(Context& ctx, Args args) {
  const bool follow = args.Switch("--follow", "-f");
  auto pos = args.Positionals();
  if (!pos.ok() || pos->size() != 1) return UsageError(ctx, "logs: want exactly one ID");
  v1::StreamLogsRequest req;
  req.set_instance_id((*pos)[0]);
  req.set_follow(follow);
  grpc::ClientContext cctx;
  auto reader = ctx.stub->StreamLogs(&cctx, req);
  v1::LogEntry entry;
  while (reader->Read(&entry)) {
    if (ctx.json) {
      *ctx.out << ToJson(entry, true) << "\n";
      continue;
    }
    std::ostream& o = entry.stream() == v1::LogEntry::STDERR ? *ctx.err : *ctx.out;
    o << entry.line();
    if (!entry.partial()) o << "\n";
    o.flush();
  }
  grpc::Status st = reader->Finish();
  if (!st.ok()) return RpcError(ctx, st);
  return 0;
}

int Events(Context& ctx, Args args) {
  auto pos = args.Positionals();
  if (!pos.ok() || pos->size() > 1) return UsageError(ctx, "events: want at most one ID");
  v1::WatchEventsRequest req;
  if (!pos->empty()) req.set_instance_id((*pos)[0]);
  grpc::ClientContext cctx;
  auto reader = ctx.stub->WatchEvents(&cctx, req);
  v1::Event ev;
  while (reader->Read(&ev)) {
    if (ctx.json) {
      *ctx.out << ToJson(ev, true) << "\n";
    } else {
      *ctx.out << TimeUtil::ToString(ev.time()) << " " << ev.sequence() << " "
               << v1::Event::Type_Name(ev.type()) << " " << ev.instance_id();
      if (ev.type() == v1::Event::EXITED) {
        *ctx.out << " " << v1::ExitReason_Name(ev.exit().reason()) << " code=" << ev.exit().code()
                 << " signal=" << ev.exit().signal();
      }
      *ctx.out << "\n";
    }
    ctx.out->flush();
  }
  grpc::Status st = reader->Finish();
  if (!st.ok()) return RpcError(ctx, st);
  return 0;
}

}  // namespace skiff::skiffctl
