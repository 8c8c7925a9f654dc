// skiffd: the skiff node agent. Serves the skiff.v1.Agent gRPC API on a Unix socket,
// owns the instance table (agent/instances) and the image store (images/), and starts
// one skiff-shim per instance. Instances outlive skiffd: SIGTERM/SIGINT stop serving,
// join every thread and exit 0 without touching them; the next skiffd recovers them from
// --state-dir. While it runs, `unreachable <ip-pool>` keeps pool traffic on the host
// (docs/operations.md). With --ingress-listen set (the default), it also serves the HTTP
// ingress: services, the concurrency gate, request-based CPU and the activator
// (docs/ingress.md); --admin-listen serves /metrics.

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "agent/api/agent_service.h"
#include "agent/ingress/activator.h"
#include "agent/ingress/admin_server.h"
#include "agent/ingress/concurrency_gate.h"
#include "agent/ingress/controller_launcher.h"
#include "agent/ingress/cpu_latency.h"
#include "agent/ingress/http_proxy.h"
#include "agent/ingress/instance_sync.h"
#include "agent/ingress/metrics.h"
#include "agent/instances/event_bus.h"
#include "agent/instances/instance_controller.h"
#include "agent/instances/ip_pool.h"
#include "agent/instances/shim_runtime.h"
#include "images/image_store.h"
#include "sandbox/common/cgroup.h"
#include "sandbox/common/net.h"
#include "sandbox/common/unique_fd.h"

ABSL_FLAG(std::string, socket, "/run/skiff/skiffd.sock", "gRPC Unix socket (created mode 0600)");
ABSL_FLAG(std::string, state_dir, "/run/skiff", "instance state directory");
ABSL_FLAG(std::string, image_root, "/var/lib/skiff/images", "image store root");
ABSL_FLAG(std::vector<std::string>, insecure_registry, {},
          "registry host:port reached over plain HTTP (comma-separated or repeated)");
ABSL_FLAG(std::string, registry_ca, "", "extra CA bundle for TLS registries");
ABSL_FLAG(std::string, ip_pool, "10.88.0.0/16", "CIDR carved into /31 pairs for instance veths");
ABSL_FLAG(std::string, shim, "",
          "skiff-shim binary (default: next to skiffd, or ../shim/ in a build tree)");
ABSL_FLAG(std::string, gen2_kernel, "",
          "gen2 guest kernel (bzImage or vmlinux; scripts/guest-kernel.sh); empty: GEN2 refused");
ABSL_FLAG(std::string, gen2_initramfs, "",
          "gen2 guest initramfs with skiff-init as /init (scripts/guest-kernel.sh)");
ABSL_FLAG(std::string, gen2_vmm, "",
          "skiff-vmm binary (default: next to skiffd, or ../sandbox/gen2/ in a build tree)");
ABSL_FLAG(uint32_t, node_vcpus_milli, 0, "CPU offered to instances, milli-vCPUs (0 = host's)");
ABSL_FLAG(uint64_t, node_memory_bytes, 0, "memory offered to instances, bytes (0 = host's)");
ABSL_FLAG(std::string, cgroup_parent, "skiff",
          "instances' cgroups are <cgroup-parent>/<id> in every hierarchy");
ABSL_FLAG(std::string, log_level, "info", "trace, debug, info, warn, error");
ABSL_FLAG(std::string, ingress_listen, "127.0.0.1:8080",
          "HTTP ingress host:port; empty = no ingress (and no request-based CPU throttling)");
ABSL_FLAG(int32_t, ingress_threads, 2, "ingress proxy threads (1..64)");
ABSL_FLAG(int32_t, ingress_busy_poll_us, 50,
          "ingress threads keep polling this many µs after handling events before they sleep "
          "(0..1000; 0 = never poll): lower latency, at the cost of otherwise idle CPU while "
          "traffic flows");
ABSL_FLAG(std::string, node_domain, "skiff.local",
          "requests for <service>.<node-domain> (or the bare <service>) go to that service");
ABSL_FLAG(uint32_t, cpu_floor_bp, 100,
          "request-based CPU: an idle instance's quota, basis points of one CPU (100 = 1 %)");
ABSL_FLAG(int32_t, cpu_latency_qos_us, -1,
          "hold a CPU latency QoS request of this many µs (/dev/cpu_dma_latency) while skiffd "
          "runs: idle CPUs wake within it (0 = they poll, never halt), so an unthrottled "
          "instance runs sooner; costs power, and in a VM a host CPU per idle vCPU. -1 = none");
ABSL_FLAG(std::string, admin_listen, "127.0.0.1:9090",
          "admin HTTP host:port serving /metrics and /healthz; empty = off");

namespace skiff::agent {
namespace {

std::atomic<int> g_signal{0};

void OnSignal(int sig) { g_signal.store(sig); }

std::string SelfDir() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return ".";
  std::string path(buf, static_cast<size_t>(n));
  return path.substr(0, path.rfind('/'));
}

uint64_t HostMemoryBytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit) {
    if (key == "MemTotal:") return kb * 1024;
  }
  return 0;
}

// A relative path of plain names, e.g. "skiff" or "skiff-bench-42/x".
bool ValidCgroupParent(const std::string& path) {
  if (path.empty() || path.front() == '/' || path.back() == '/' || path.size() > 200) return false;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part.empty() || part == "." || part == "..") return false;
    for (char c : part) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-';
      if (!ok) return false;
    }
  }
  return true;
}

// Removes the cgroup parent's directories (deepest first) from every hierarchy where they
// are empty; a directory still in use (EBUSY/ENOTEMPTY) stays. The shims create them.
void RemoveEmptyCgroupParent(const std::string& parent, spdlog::logger& log) {
  absl::StatusOr<CgroupRoots> roots = CgroupRoots::Detect();
  if (!roots.ok()) {
    log.warn("cgroup parent: error=\"{}\"", roots.status().ToString());
    return;
  }
  std::vector<std::string> hierarchies;
  for (const std::string* r : {&roots->unified, &roots->cpu, &roots->cpuacct, &roots->memory,
                               &roots->pids, &roots->freezer}) {
    if (!r->empty() && std::find(hierarchies.begin(), hierarchies.end(), *r) == hierarchies.end()) {
      hierarchies.push_back(*r);
    }
  }
  for (const std::string& h : hierarchies) {
    for (std::string rel = parent; !rel.empty();) {
      const std::string dir = absl::StrCat(h, "/", rel);
      if (rmdir(dir.c_str()) != 0) {
        if (errno != ENOENT && errno != EBUSY && errno != ENOTEMPTY) {
          log.warn("cgroup parent: rmdir({}): {}", dir, strerror(errno));
        }
        if (errno != ENOENT) break;
      }
      const size_t slash = rel.rfind('/');
      rel = slash == std::string::npos ? "" : rel.substr(0, slash);
    }
  }
}

// Makes the socket's directory (0700) and clears a stale socket file.
absl::Status PrepareSocket(const std::string& path) {
  const std::string dir = path.substr(0, path.rfind('/'));
  if (!dir.empty() && mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::InternalError(absl::StrCat("mkdir(", dir, "): ", strerror(errno)));
  }
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return absl::InternalError(absl::StrCat("unlink(", path, "): ", strerror(errno)));
  }
  return absl::OkStatus();
}

int Run() {
  auto log = spdlog::stderr_color_mt("skiffd");
  spdlog::set_default_logger(log);
  const std::string level = absl::GetFlag(FLAGS_log_level);
  if (level != "trace" && level != "debug" && level != "info" && level != "warn" &&
      level != "error") {
    log->error("flag --log-level: \"{}\" is not trace, debug, info, warn or error", level);
    return 2;
  }
  log->set_level(spdlog::level::from_str(level));
  const int32_t cpu_latency_qos_us = absl::GetFlag(FLAGS_cpu_latency_qos_us);
  if (cpu_latency_qos_us < -1 || cpu_latency_qos_us > ingress::CpuLatencyRequest::kMaxUs) {
    log->error("flag --cpu-latency-qos-us: {} is not in -1..{}", cpu_latency_qos_us,
               ingress::CpuLatencyRequest::kMaxUs);
    return 2;
  }

  // The shims get absolute paths whatever the working directory.
  const std::string socket_path = std::filesystem::absolute(absl::GetFlag(FLAGS_socket));
  const std::string state_dir = std::filesystem::absolute(absl::GetFlag(FLAGS_state_dir));
  std::string shim = absl::GetFlag(FLAGS_shim);
  if (shim.empty()) {
    // Installed side by side; in a build tree, shim/ is skiffd's sibling directory.
    shim = SelfDir() + "/skiff-shim";
    const std::string build_tree = SelfDir() + "/../shim/skiff-shim";
    if (access(shim.c_str(), X_OK) != 0 && access(build_tree.c_str(), X_OK) == 0) {
      shim = build_tree;
    }
  }

  std::string vmm = absl::GetFlag(FLAGS_gen2_vmm);
  if (vmm.empty()) {
    vmm = SelfDir() + "/skiff-vmm";
    const std::string build_tree = SelfDir() + "/../sandbox/gen2/skiff-vmm";
    if (access(vmm.c_str(), X_OK) != 0 && access(build_tree.c_str(), X_OK) == 0) {
      vmm = std::filesystem::canonical(build_tree);
    }
  }

  images::StoreOptions store_options;
  store_options.root = std::filesystem::absolute(absl::GetFlag(FLAGS_image_root));
  store_options.insecure_registries = absl::GetFlag(FLAGS_insecure_registry);
  store_options.ca_file = absl::GetFlag(FLAGS_registry_ca);
  // One skiffd per state dir: a second one would steal the socket and share the shims.
  if (mkdir(state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    log->error("mkdir: state_dir={} error=\"{}\"", state_dir, strerror(errno));
    return 1;
  }
  const std::string lock_path = state_dir + "/skiffd.lock";
  UniqueFd lock_fd(open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!lock_fd || flock(lock_fd.get(), LOCK_EX | LOCK_NB) != 0) {
    log->error("lock: path={} error=\"{}\" (is another skiffd running on this state dir?)",
               lock_path, strerror(errno));
    return 1;
  }

  auto store = images::ImageStore::Open(store_options);
  if (!store.ok()) {
    log->error("open image store: root={} error=\"{}\"", store_options.root,
               store.status().ToString());
    return 1;
  }
  auto pool = IpPool::Create(absl::GetFlag(FLAGS_ip_pool));
  if (!pool.ok()) {
    log->error("flag --ip_pool: error=\"{}\"", pool.status().ToString());
    return 2;
  }
  auto runtime = NewShimRuntime(shim);
  if (!runtime.ok()) {
    log->error("instance runtime: shim={} error=\"{}\"", shim, runtime.status().ToString());
    return 1;
  }
  if (access(shim.c_str(), X_OK) != 0) {
    log->warn("shim binary not executable: shim={} (instances will fail to start)", shim);
  }

  ControllerOptions options;
  options.state_dir = state_dir;
  options.cgroup_parent = absl::GetFlag(FLAGS_cgroup_parent);
  if (!ValidCgroupParent(options.cgroup_parent)) {
    log->error("flag --cgroup-parent: \"{}\" is not a relative path of [A-Za-z0-9._-] names",
               options.cgroup_parent);
    return 2;
  }
  options.capacity.vcpus_milli = absl::GetFlag(FLAGS_node_vcpus_milli);
  if (options.capacity.vcpus_milli == 0) {
    options.capacity.vcpus_milli =
        static_cast<uint32_t>(std::thread::hardware_concurrency()) * 1000;
  }
  options.capacity.memory_bytes = absl::GetFlag(FLAGS_node_memory_bytes);
  if (options.capacity.memory_bytes == 0) options.capacity.memory_bytes = HostMemoryBytes();
  const std::string ingress_listen = absl::GetFlag(FLAGS_ingress_listen);
  const int32_t ingress_threads = absl::GetFlag(FLAGS_ingress_threads);
  if (ingress_threads < 1 || ingress_threads > 64) {
    log->error("flag --ingress-threads: {} is not in 1..64", ingress_threads);
    return 2;
  }
  const int32_t ingress_busy_poll_us = absl::GetFlag(FLAGS_ingress_busy_poll_us);
  if (ingress_busy_poll_us < 0 || ingress_busy_poll_us > 1000) {
    log->error("flag --ingress-busy-poll-us: {} is not in 0..1000", ingress_busy_poll_us);
    return 2;
  }
  options.cpu_throttle = !ingress_listen.empty();
  options.cpu_floor_bp = absl::GetFlag(FLAGS_cpu_floor_bp);
  for (const auto& [flag, value, out] :
       {std::tuple{"--gen2-kernel", absl::GetFlag(FLAGS_gen2_kernel), &options.gen2_kernel},
        std::tuple{"--gen2-initramfs", absl::GetFlag(FLAGS_gen2_initramfs),
                   &options.gen2_initramfs}}) {
    if (value.empty()) continue;
    if (access(value.c_str(), R_OK) != 0) {
      log->error("flag {}: {}: not readable", flag, value);
      return 2;
    }
    *out = std::filesystem::absolute(value);
  }
  if (!options.gen2_kernel.empty() && access(vmm.c_str(), X_OK) == 0) options.gen2_vmm = vmm;
  if (options.cpu_floor_bp < 1 || options.cpu_floor_bp > 10000) {
    log->error("flag --cpu-floor-bp: {} is not in 1..10000", options.cpu_floor_bp);
    return 2;
  }
  // Held until skiffd exits; the kernel drops it with the fd, however skiffd ends.
  std::optional<ingress::CpuLatencyRequest> cpu_latency;
  if (cpu_latency_qos_us >= 0) {
    auto held = ingress::CpuLatencyRequest::Hold(cpu_latency_qos_us);
    if (!held.ok()) {
      log->error("flag --cpu-latency-qos-us: {}", held.status().ToString());
      return 1;
    }
    cpu_latency.emplace(std::move(*held));
    const std::string idle_driver = ingress::CpuLatencyRequest::IdleDriver();
    if (idle_driver == "none") {
      log->warn(
          "cpu latency qos: holding {} us ({}), but no cpuidle driver is loaded: idle "
          "CPUs halt anyway and the request has no effect",
          cpu_latency_qos_us, ingress::CpuLatencyRequest::kDefaultPath);
    } else {
      log->info("cpu latency qos: holding {} us ({}, cpuidle driver {}): idle CPUs wake within it",
                cpu_latency_qos_us, ingress::CpuLatencyRequest::kDefaultPath, idle_driver);
    }
  }

  // Pool addresses without a live veth (never assigned, or the instance exited) must not
  // follow the default route off the host: the per-instance /31s are more specific. Only a clean
  // shutdown with no instance left running removes it (an error exit keeps it).
  const std::string pool_cidr = absl::GetFlag(FLAGS_ip_pool);
  if (absl::Status st = AddUnreachableRoute(pool_cidr); !st.ok()) {
    log->error("pool route: cidr={} error=\"{}\"", pool_cidr, st.ToString());
    return 1;
  }
  log->info("pool route: unreachable {} installed", pool_cidr);
  // Declared before the service and server that borrow them (destroyed after).
  auto events = std::make_unique<EventBus>();
  auto controller = std::make_unique<InstanceController>(options, store->get(), runtime->get(),
                                                         pool->get(), events.get());
  auto report = controller->Recover();
  if (!report.ok()) {
    log->error("recover: state_dir={} error=\"{}\"", state_dir, report.status().ToString());
    return 1;
  }
  for (const std::string& problem : report->problems) {
    log->warn("recover: skipped {}", problem);
  }
  log->info("recovered: running={} exited={} lost={}", report->running, report->exited,
            report->lost);

  // The ingress: services and their pools, the activator, the proxy; then /metrics.
  ingress::MetricsRegistry metrics;
  std::unique_ptr<ingress::ServiceRouter> router;
  std::unique_ptr<ingress::ControllerLauncher> launcher;
  std::unique_ptr<ingress::ServiceActivator> activator;
  std::unique_ptr<ingress::InstanceSync> sync;
  std::unique_ptr<ingress::HttpProxy> proxy;
  if (!ingress_listen.empty()) {
    router = std::make_unique<ingress::ServiceRouter>(absl::GetFlag(FLAGS_node_domain));
    launcher = std::make_unique<ingress::ControllerLauncher>(controller.get());
    auto created =
        ingress::ServiceActivator::Create(state_dir, router.get(), launcher.get(), &metrics);
    if (!created.ok()) {
      log->error("services: state_dir={} error=\"{}\"", state_dir, created.status().ToString());
      return 1;
    }
    activator = std::move(*created);
    for (const absl::Status& skipped : activator->LoadErrors()) {
      log->warn("services: skipped a stored service: error=\"{}\"", skipped.ToString());
    }
    ingress::InstanceSyncOptions sync_options;
    ingress::ServiceActivator* act = activator.get();
    sync_options.on_ready = [act](const std::string& service, const std::string& id) {
      act->InstanceReady(service, id);
    };
    sync_options.on_exited = [act](const std::string& service, const std::string& id) {
      act->InstanceExited(service, id);
    };
    sync = std::make_unique<ingress::InstanceSync>(controller.get(), events.get(), router.get(),
                                                   std::move(sync_options));
    sync->RegisterMetrics(&metrics);
    ingress::InstanceSync* drain = sync.get();
    controller->SetDrainHook([drain](const v1::Instance& instance, absl::Time deadline) {
      drain->Drain(instance, deadline);
    });
    ingress::HttpProxyOptions proxy_options;
    proxy_options.listen = ingress_listen;
    proxy_options.threads = ingress_threads;
    proxy_options.busy_poll = absl::Microseconds(ingress_busy_poll_us);
    auto started = ingress::HttpProxy::Start(proxy_options, router.get(), &metrics);
    if (!started.ok()) {
      log->error("ingress: listen={} error=\"{}\"", ingress_listen, started.status().ToString());
      return 1;
    }
    proxy = std::move(*started);
    log->info("ingress: listen={} node_domain={} threads={} services={}", ingress_listen,
              router->node_domain(), ingress_threads, activator->List().size());
  } else {
    log->info("ingress: off (--ingress-listen is empty); instances are never CPU-throttled");
  }
  std::unique_ptr<ingress::AdminServer> admin;
  if (const std::string admin_listen = absl::GetFlag(FLAGS_admin_listen); !admin_listen.empty()) {
    auto started = ingress::AdminServer::Start(admin_listen, &metrics);
    if (!started.ok()) {
      log->error("admin: listen={} error=\"{}\"", admin_listen, started.status().ToString());
      return 1;
    }
    admin = std::move(*started);
    log->info("admin: listen={} (/metrics, /healthz)", admin_listen);
  }

  if (absl::Status st = PrepareSocket(socket_path); !st.ok()) {
    log->error("socket: {}", st.ToString());
    return 1;
  }
  AgentService service(controller.get(), store->get(), events.get());
  service.SetServiceActivator(activator.get());  // null: the service RPCs are UNIMPLEMENTED
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat("unix:", socket_path), grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  const mode_t old_umask = umask(0177);  // the socket is created 0600
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  umask(old_umask);
  if (server == nullptr) {
    log->error("serve: socket={} error=\"cannot listen\"", socket_path);
    return 1;
  }
  chmod(socket_path.c_str(), 0600);
  log->info("serving: socket={} state_dir={} image_root={} shim={} vcpus_milli={} memory_bytes={}",
            socket_path, state_dir, store_options.root, shim, options.capacity.vcpus_milli,
            options.capacity.memory_bytes);

  // Lifecycle events go to the log as they happen (one line each, key=value).
  std::shared_ptr<EventSubscription> event_log = events->Subscribe("");
  std::thread event_logger([event_log, log] {
    for (;;) {
      absl::StatusOr<std::optional<v1::Event>> next = event_log->Next(absl::Milliseconds(200));
      if (!next.ok()) return;
      if (!next->has_value()) continue;
      const v1::Event& e = **next;
      if (e.type() == v1::Event::EXITED) {
        log->info("event seq={} type=EXITED id={} reason={} code={} signal={} message=\"{}\"",
                  e.sequence(), e.instance_id(), v1::ExitReason_Name(e.exit().reason()),
                  e.exit().code(), e.exit().signal(), e.exit().message());
      } else {
        log->info("event seq={} type={} id={}", e.sequence(), v1::Event::Type_Name(e.type()),
                  e.instance_id());
      }
    }
  });

  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  while (g_signal.load() == 0) usleep(100 * 1000);

  log->info("shutting down: signal={} (instances keep running)", g_signal.load());
  if (proxy != nullptr) proxy->Stop();  // no new requests; open ones are cut
  controller->Shutdown();               // ends Stop/logs waits; cancels and joins every watcher
  events->CloseAll();                   // ends WatchEvents streams and the event logger
  event_logger.join();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server->Wait();
  server.reset();
  unlink(socket_path.c_str());
  activator.reset();  // joins its control and cold-start threads
  sync.reset();
  admin.reset();

  // Instances left running keep their pool protected (and their cgroup parent) for the
  // next skiffd.
  uint32_t live = 0;
  const v1::Node node = controller->GetNode();
  for (const auto& [state, count] : node.instances_by_state()) {
    if (state != v1::InstanceState_Name(v1::EXITED)) live += count;
  }
  if (live == 0) {
    RemoveEmptyCgroupParent(options.cgroup_parent, *log);
    if (absl::Status st = DeleteRoute(pool_cidr); !st.ok() && !absl::IsNotFound(st)) {
      log->warn("pool route: cidr={} error=\"{}\"", pool_cidr, st.ToString());
    } else {
      log->info("pool route: unreachable {} removed (no instance left running)", pool_cidr);
    }
  } else {
    log->info("pool route: unreachable {} kept (instances_running={})", pool_cidr, live);
  }
  log->info("shut down: signal={}", g_signal.load());
  log->flush();
  return 0;
}

}  // namespace
}  // namespace skiff::agent

namespace {

// Accepts --state-dir as well as --state_dir, and merges repeated --insecure_registry
// flags (absl keeps only the last occurrence of a flag) into one comma-separated list.
std::vector<std::string> NormalizeArgs(int argc, char** argv) {
  std::vector<std::string> out = {argv[0]};
  std::vector<std::string> registries;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") {
      for (; i < argc; ++i) out.push_back(argv[i]);
      break;
    }
    if (arg.rfind("--", 0) == 0) {
      const size_t eq = arg.find('=');
      for (size_t j = 2; j < std::min(eq, arg.size()); ++j) {
        if (arg[j] == '-') arg[j] = '_';
      }
      const std::string name = arg.substr(0, eq);
      if (name == "--insecure_registry") {
        if (eq != std::string::npos) {
          registries.push_back(arg.substr(eq + 1));
        } else if (i + 1 < argc) {
          registries.push_back(argv[++i]);
        }
        continue;
      }
    }
    out.push_back(arg);
  }
  if (!registries.empty()) {
    std::string joined;
    for (const auto& r : registries) joined += (joined.empty() ? "" : ",") + r;
    out.push_back("--insecure_registry=" + joined);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's abseil checks every Mutex acquisition for lock-order cycles (a graph lookup per
  // lock: measurable on the ingress's per-request path). The tests run with it on.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::SetProgramUsageMessage("skiffd: the skiff node agent");
  std::vector<std::string> args = NormalizeArgs(argc, argv);
  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  absl::ParseCommandLine(static_cast<int>(args.size()), cargs.data());
  return skiff::agent::Run();
}
