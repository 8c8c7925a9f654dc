// skiffctl pull, images, rmi, node.

#include <google/protobuf/util/time_util.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/skiffctl/commands.h"
#include "agent/skiffctl/quantity.h"
#include "agent/skiffctl/table.h"

namespace skiff::skiffctl {

int Pull(Context& ctx, Args args) {
  auto pos = args.Positionals();
  if (!pos.ok() || pos->size() != 1) return UsageError(ctx, "pull: want exactly one IMAGE");
  v1::PullImageRequest req;
  req.set_image((*pos)[0]);
  grpc::ClientContext cctx;
  auto reader = ctx.stub->PullImage(&cctx, req);
  const bool tty = ctx.out == &std::cout && isatty(STDOUT_FILENO);
  v1::PullProgress p;
  std::string last_line;
  while (reader->Read(&p)) {
    if (ctx.json) {
      *ctx.out << ToJson(p, true) << "\n";
      continue;
    }
    if (tty) {
      constexpr int kWidth = 30;
      const double frac =
          p.total_bytes() > 0 ? static_cast<double>(p.done_bytes()) / p.total_bytes() : 0.0;
      const int filled = static_cast<int>(frac * kWidth);
      *ctx.out << absl::StrFormat("\r%-10s [%s%s] %5.1f%% %s / %s  layers %u/%u\033[K", p.phase(),
                                  std::string(filled, '#'), std::string(kWidth - filled, ' '),
                                  frac * 100, HumanBytes(p.done_bytes()),
                                  HumanBytes(p.total_bytes()), p.layers_done(), p.layers_total());
      ctx.out->flush();
    } else {
      // Plain lines: one per phase change or finished layer, never a flood.
      const std::string key = absl::StrCat(p.phase(), " ", p.layers_done());
      if (key != last_line) {
        *ctx.out << p.phase() << " layers " << p.layers_done() << "/" << p.layers_total()
                 << " bytes " << p.done_bytes() << "/" << p.total_bytes() << "\n";
      }
      last_line = key;
    }
  }
  if (tty && !ctx.json) *ctx.out << "\n";
  grpc::Status st = reader->Finish();
  if (!st.ok()) return RpcError(ctx, st);
  if (!ctx.json) *ctx.out << req.image() << " " << p.digest() << "\n";
  return 0;
}

int Images(Context& ctx, Args args) {
  auto pos = args.Positionals();
  if (!pos.ok() || !pos->empty()) return UsageError(ctx, "images: takes no arguments");
  v1::ListImagesResponse resp;
  grpc::ClientContext cctx;
  grpc::Status st = ctx.stub->ListImages(&cctx, v1::ListImagesRequest(), &resp);
  if (!st.ok()) return RpcError(ctx, st);
  if (ctx.json) {
    *ctx.out << ToJson(resp, false) << "\n";
    return 0;
  }
  Table t({"REFERENCE", "DIGEST", "SIZE", "LAYERS", "PULLED"});
  for (const auto& img : resp.images()) {
    const std::string digest = img.digest().substr(0, 19);
    const std::string pulled = google::protobuf::util::TimeUtil::ToString(img.pulled_at());
    if (img.references().empty()) {
      t.AddRow(
          {"<none>", digest, HumanBytes(img.size_bytes()), absl::StrCat(img.layers()), pulled});
    }
    for (const auto& ref : img.references()) {
      t.AddRow({ref, digest, HumanBytes(img.size_bytes()), absl::StrCat(img.layers()), pulled});
    }
  }
  t.Print(*ctx.out);
  return 0;
}

int Rmi(Context& ctx, Args args) {
  auto pos = args.Positionals();
  if (!pos.ok() || pos->size() != 1) return UsageError(ctx, "rmi: want exactly one IMAGE");
  v1::RemoveImageRequest req;
  req.set_image((*pos)[0]);
  v1::RemoveImageResponse resp;
  grpc::ClientContext cctx;
  grpc::Status st = ctx.stub->RemoveImage(&cctx, req, &resp);
  if (!st.ok()) return RpcError(ctx, st);
  if (!ctx.json) *ctx.out << req.image() << "\n";
  return 0;
}

int Node(Context& ctx, Args args) {
  auto pos = args.Positionals();
  if (!pos.ok() || !pos->empty()) return UsageError(ctx, "node: takes no arguments");
  v1::Node node;
  grpc::ClientContext cctx;
  grpc::Status st = ctx.stub->GetNode(&cctx, v1::GetNodeRequest(), &node);
  if (!st.ok()) return RpcError(ctx, st);
  if (ctx.json) {
    *ctx.out << ToJson(node, false) << "\n";
    return 0;
  }
  Table t({"FIELD", "VALUE"});
  t.AddRow({"hostname", node.hostname()});
  t.AddRow({"version", node.version()});
  t.AddRow({"cgroup", node.cgroup_version()});
  t.AddRow({"cpu", absl::StrCat(node.vcpus_milli_allocated(), "m / ", node.vcpus_milli_capacity(),
                                "m allocated")});
  t.AddRow({"memory", absl::StrCat(HumanBytes(node.memory_bytes_allocated()), " / ",
                                   HumanBytes(node.memory_bytes_capacity()), " allocated")});
  t.AddRow({"instances", absl::StrCat(node.instances_total())});
  for (const auto& [state, n] : node.instances_by_state()) {
    t.AddRow({absl::StrCat("  ", state), absl::StrCat(n)});
  }
  t.Print(*ctx.out);
  return 0;
}

}  // namespace skiff::skiffctl
