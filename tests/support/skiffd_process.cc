#include "tests/support/skiffd_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "sandbox/common/file_io.h"
#include "sandbox/common/status.h"
#include "sandbox/common/unique_fd.h"

namespace skiff::testing {

std::string BuildPath(const std::string& rel) {
  const char* b = getenv("SKIFF_BUILD_DIR");
  return absl::StrCat(b ? b : ".", "/", rel);
}

absl::StatusOr<std::unique_ptr<SkiffdProcess>> SkiffdProcess::Create(SkiffdOptions options) {
  auto p = std::unique_ptr<SkiffdProcess>(new SkiffdProcess());
  char tmpl[] = "/tmp/skiff-e2e-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return ErrnoStatus(errno, "mkdtemp(", tmpl, ")");
  p->root_ = tmpl;
  p->socket_ = p->root_ + "/skiffd.sock";
  p->state_dir_ = p->root_ + "/state";
  p->image_root_ = p->root_ + "/images";
  p->log_ = p->root_ + "/skiffd.log";
  if (options.cgroup_parent.empty()) {
    options.cgroup_parent = absl::StrCat("skiff-e2e-", getpid());
  }
  p->options_ = std::move(options);
  return p;
}

SkiffdProcess::~SkiffdProcess() {
  if (pid_ > 0) (void)Stop(/*kill=*/true);
  std::error_code ec;
  std::filesystem::remove_all(root_, ec);
}

absl::Status SkiffdProcess::Start(absl::Duration timeout) {
  std::vector<std::string> args = {
      BuildPath("agent/skiffd"),
      "--socket=" + socket_,
      "--state-dir=" + state_dir_,
      "--image-root=" + image_root_,
      "--ip-pool=" + options_.ip_pool,
      "--cgroup-parent=" + options_.cgroup_parent,
      "--shim=" + BuildPath("shim/skiff-shim"),
  };
  for (const auto& r : options_.insecure_registries) args.push_back("--insecure-registry=" + r);
  if (options_.ingress) {
    // Fresh ports at every start (a restarted skiffd may find the old ones in TIME_WAIT).
    SKIFF_ASSIGN_OR_RETURN(ingress_port_, FreeLoopbackPort());
    SKIFF_ASSIGN_OR_RETURN(admin_port_, FreeLoopbackPort());
    args.push_back("--ingress-listen=127.0.0.1:" + std::to_string(ingress_port_));
    args.push_back("--admin-listen=127.0.0.1:" + std::to_string(admin_port_));
    args.push_back("--node-domain=" + options_.node_domain);
  } else {
    args.push_back("--ingress-listen=");
    args.push_back("--admin-listen=");
  }
  for (const auto& f : options_.extra_flags) args.push_back(f);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int log_fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return ErrnoStatus(errno, "open(", log_, ")");
  pid_t pid = fork();
  if (pid < 0) return ErrnoStatus(errno, "fork(skiffd)");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // a crashed test leaves no skiffd behind
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    execv(argv[0], argv.data());
    _exit(127);
  }
  UniqueFd log_owner(log_fd);
  pid_ = pid;

  // A fresh channel per attempt: a channel that failed to connect before the socket
  // existed would wait out gRPC's reconnect backoff (seconds).
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::InternalError(
          absl::StrCat("skiffd exited during start-up (status ", status, "); see ", log_));
    }
    if (access(socket_.c_str(), F_OK) == 0) {
      auto channel = grpc::CreateChannel("unix://" + socket_, grpc::InsecureChannelCredentials());
      auto stub = v1::Agent::NewStub(channel);
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
      v1::GetNodeRequest req;
      v1::Node node;
      if (stub->GetNode(&ctx, req, &node).ok()) {
        stub_ = std::move(stub);
        return absl::OkStatus();
      }
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  return absl::DeadlineExceededError(absl::StrCat("skiffd did not answer on ", socket_));
}

absl::Status SkiffdProcess::Stop(bool kill, absl::Duration timeout) {
  if (pid_ <= 0) return absl::OkStatus();
  ::kill(pid_, kill ? SIGKILL : SIGTERM);
  int status;
  const absl::Time deadline = absl::Now() + timeout;
  while (waitpid(pid_, &status, WNOHANG) == 0) {
    if (absl::Now() > deadline) {
      ::kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      pid_ = -1;
      return absl::DeadlineExceededError(
          absl::StrCat("skiffd still running ", absl::FormatDuration(timeout), " after SIGTERM"));
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  pid_ = -1;
  return absl::OkStatus();
}

void SkiffdProcess::RemoveCgroupParent() {
  for (const char* c : {"cpu", "cpuacct", "memory", "pids", "freezer", "unified"}) {
    std::string dir = absl::StrCat("/sys/fs/cgroup/", c, "/", options_.cgroup_parent);
    if (rmdir(dir.c_str()) != 0 && errno != ENOENT) {
      fprintf(stderr, "rmdir(%s): %s\n", dir.c_str(), strerror(errno));
    }
  }
}

absl::Status SkiffdProcess::DeleteAll() {
  absl::Status result;
  auto note = [&](const grpc::Status& st, const std::string& what) {
    result.Update(FromGrpc(st, what));
  };
  const auto deadline = [] { return std::chrono::system_clock::now() + std::chrono::seconds(60); };
  if (options_.ingress) {
    grpc::ClientContext ctx;
    v1::ListServicesResponse services;
    note(stub_->ListServices(&ctx, v1::ListServicesRequest(), &services), "ListServices");
    for (const auto& svc : services.services()) {
      grpc::ClientContext dctx;
      dctx.set_deadline(deadline());
      v1::DeleteServiceRequest req;
      req.set_name(svc.name());
      v1::DeleteServiceResponse resp;
      note(stub_->DeleteService(&dctx, req, &resp), "DeleteService(" + svc.name() + ")");
    }
  }
  grpc::ClientContext ctx;
  v1::ListInstancesResponse list;
  note(stub_->ListInstances(&ctx, v1::ListInstancesRequest(), &list), "ListInstances");
  for (const auto& inst : list.instances()) {
    grpc::ClientContext dctx;
    dctx.set_deadline(deadline());
    v1::DeleteInstanceRequest req;
    req.set_instance_id(inst.id());
    req.set_force(true);
    v1::DeleteInstanceResponse resp;
    note(stub_->DeleteInstance(&dctx, req, &resp), "DeleteInstance(" + inst.id() + ")");
  }
  return result;
}

absl::Status FromGrpc(const grpc::Status& status, const std::string& what) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(what, ": ", status.error_message()));
}

absl::StatusOr<v1::Instance> WaitForState(v1::Agent::Stub& stub, const std::string& id,
                                          v1::InstanceState want, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    grpc::ClientContext ctx;
    v1::GetInstanceRequest req;
    req.set_instance_id(id);
    v1::Instance inst;
    SKIFF_RETURN_IF_ERROR(FromGrpc(stub.GetInstance(&ctx, req, &inst), "GetInstance(" + id + ")"));
    if (inst.state() == want) return inst;
    if (inst.state() == v1::EXITED) {
      return absl::FailedPreconditionError(absl::StrCat(id, " exited waiting for ",
                                                        v1::InstanceState_Name(want), ": ",
                                                        inst.exit().ShortDebugString()));
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat(id, " still ",
                                                      v1::InstanceState_Name(inst.state()),
                                                      ", wanted ", v1::InstanceState_Name(want)));
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
}

absl::StatusOr<std::string> ReadLogs(v1::Agent::Stub& stub, const std::string& id,
                                     LogFormat format) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::StreamLogsRequest req;
  req.set_instance_id(id);
  auto reader = stub.StreamLogs(&ctx, req);
  v1::LogEntry e;
  std::string out;
  while (reader->Read(&e)) {
    if (format == LogFormat::kTagged) {
      out += e.stream() == v1::LogEntry::STDERR ? "err:" : "out:";
    }
    absl::StrAppend(&out, e.line(), e.partial() ? "" : "\n");
  }
  SKIFF_RETURN_IF_ERROR(FromGrpc(reader->Finish(), "StreamLogs(" + id + ")"));
  return out;
}

absl::StatusOr<uint64_t> ReadCgroupCounter(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  uint64_t v = 0;
  if (!text.ok() || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &v)) {
    return absl::NotFoundError(absl::StrCat("read(", path, ")"));
  }
  return v;
}

absl::StatusOr<uint16_t> FreeLoopbackPort() {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoStatus(errno, "socket(AF_INET)");
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return ErrnoStatus(errno, "bind(127.0.0.1:0)");
  }
  socklen_t len = sizeof(addr);
  if (getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return ErrnoStatus(errno, "getsockname");
  }
  return ntohs(addr.sin_port);
}

}  // namespace skiff::testing
