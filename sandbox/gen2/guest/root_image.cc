#include "sandbox/gen2/guest/root_image.h"

#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "sandbox/common/status.h"
#include "sandbox/common/unique_fd.h"

namespace skiff::gen2::guest {

namespace {

// Kept of mkfs.erofs's output for an error message.
constexpr size_t kMaxOutputTail = 2048;

// What the child failed at before execve.
enum class ChildStage : int32_t { kUnshare = 1, kPrivate, kMount, kStdio, kExec };

struct ChildFailure {
  ChildStage stage;
  int32_t err;
};

// Prepared before the fork: the child only reads it.
struct ChildPlan {
  std::string merged;
  std::string overlay_data;
  std::vector<std::string> args;
  std::vector<char*> argv;
  int output_fd = -1;
  int error_fd = -1;
};

[[noreturn]] void ChildFail(const ChildPlan& plan, ChildStage stage, int err) {
  ChildFailure f = {stage, err};
  while (write(plan.error_fd, &f, sizeof(f)) < 0 && errno == EINTR) {
  }
  _exit(127);
}

[[noreturn]] void RunChild(const ChildPlan& plan) {
  if (unshare(CLONE_NEWNS) != 0) ChildFail(plan, ChildStage::kUnshare, errno);
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    ChildFail(plan, ChildStage::kPrivate, errno);
  }
  if (mount("overlay", plan.merged.c_str(), "overlay", MS_RDONLY, plan.overlay_data.c_str()) != 0) {
    ChildFail(plan, ChildStage::kMount, errno);
  }
  if (dup2(plan.output_fd, 1) < 0 || dup2(plan.output_fd, 2) < 0) {
    ChildFail(plan, ChildStage::kStdio, errno);
  }
  char* const envp[] = {nullptr};
  execve(plan.argv[0], plan.argv.data(), envp);
  ChildFail(plan, ChildStage::kExec, errno);
}

std::string StageName(ChildStage stage, const ChildPlan& plan) {
  switch (stage) {
    case ChildStage::kUnshare:
      return "unshare(CLONE_NEWNS)";
    case ChildStage::kPrivate:
      return "mount(/, MS_REC|MS_PRIVATE)";
    case ChildStage::kMount:
      return absl::StrCat("mount(overlay, ", plan.merged, ", ", plan.overlay_data, ")");
    case ChildStage::kStdio:
      return "dup2(stdout/stderr)";
    case ChildStage::kExec:
      return absl::StrCat("execve(", plan.args[0], ")");
  }
  return "unknown step";
}

absl::Status CheckLowerDir(const std::string& dir) {
  if (dir.empty() || dir[0] != '/') {
    return absl::InvalidArgumentError(absl::StrCat("lower dir \"", dir, "\": not absolute"));
  }
  // ':' separates lower dirs and ',' options in the overlay's mount data.
  if (dir.find_first_of(":,\\") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("lower dir \"", dir, "\": ':', ',' or '\\' in the path"));
  }
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) return ErrnoStatus(errno, "stat(", dir, ")");
  if (!S_ISDIR(st.st_mode)) return absl::InvalidArgumentError(absl::StrCat(dir, ": not a dir"));
  return absl::OkStatus();
}

// Runs mkfs.erofs over the overlay of `lowers` into `image` in a child's mount namespace.
absl::Status RunMkfs(const RootImageSpec& spec, std::vector<std::string> lowers,
                     const std::string& merged, const std::string& image) {
  ChildPlan plan;
  plan.merged = merged;
  plan.overlay_data = absl::StrCat("lowerdir=", absl::StrJoin(lowers, ":"));
  plan.args = {spec.mkfs_erofs, "--quiet", "--preserve-mtime", image, merged};
  for (std::string& a : plan.args) plan.argv.push_back(a.data());
  plan.argv.push_back(nullptr);

  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe2(mkfs output)");
  UniqueFd out_r(out_pipe[0]), out_w(out_pipe[1]);
  if (pipe2(err_pipe, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe2(exec report)");
  UniqueFd err_r(err_pipe[0]), err_w(err_pipe[1]);
  plan.output_fd = out_w.get();
  plan.error_fd = err_w.get();

  pid_t pid = fork();
  if (pid < 0) return ErrnoStatus(errno, "fork(mkfs.erofs)");
  if (pid == 0) RunChild(plan);
  out_w.Reset();
  err_w.Reset();

  ChildFailure failure;
  ssize_t n;
  do {
    n = read(err_r.get(), &failure, sizeof(failure));
  } while (n < 0 && errno == EINTR);
  std::string output;
  char buf[4096];
  while (true) {
    ssize_t r = read(out_r.get(), buf, sizeof(buf));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    output.append(buf, static_cast<size_t>(r));
    if (output.size() > 2 * kMaxOutputTail) output.erase(0, output.size() - kMaxOutputTail);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return ErrnoStatus(errno, "waitpid(mkfs.erofs)");
  }
  if (n == sizeof(failure)) return ErrnoStatus(failure.err, StageName(failure.stage, plan));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    if (output.size() > kMaxOutputTail) output.erase(0, output.size() - kMaxOutputTail);
    return absl::InternalError(absl::StrCat(spec.mkfs_erofs, " ", image, " ", merged,
                                            ": wait status ", status, ": ", output));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status BuildRootImage(const RootImageSpec& spec, const std::string& output) {
  if (spec.lower_dirs.empty()) return absl::InvalidArgumentError("root image: no lower dirs");
  for (const std::string& dir : spec.lower_dirs) SKIFF_RETURN_IF_ERROR(CheckLowerDir(dir));

  std::string scratch = output + ".build.XXXXXX";
  if (mkdtemp(scratch.data()) == nullptr) return ErrnoStatus(errno, "mkdtemp(", scratch, ")");
  const std::string merged = scratch + "/merged";
  const std::string empty = scratch + "/empty";
  absl::Cleanup remove_scratch = [&] {
    rmdir(merged.c_str());
    rmdir(empty.c_str());
    rmdir(scratch.c_str());
  };
  if (mkdir(merged.c_str(), 0755) != 0) return ErrnoStatus(errno, "mkdir(", merged, ")");
  if (mkdir(empty.c_str(), 0755) != 0) return ErrnoStatus(errno, "mkdir(", empty, ")");
  if (scratch.find_first_of(":,\\") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("output path ", output, ": ':', ',' or '\\'"));
  }

  std::string image = output + ".tmp.XXXXXX";
  UniqueFd image_fd(mkostemp(image.data(), O_CLOEXEC));
  if (!image_fd) return ErrnoStatus(errno, "mkostemp(", image, ")");
  absl::Cleanup remove_image = [&image] { unlink(image.c_str()); };

  std::vector<std::string> lowers = spec.lower_dirs;
  // An overlay without an upper dir needs two lowers: a single layer gets an empty one
  // beneath it (which also makes its whiteouts, meaningless at the bottom, disappear).
  if (lowers.size() == 1) lowers.push_back(empty);
  SKIFF_RETURN_IF_ERROR(RunMkfs(spec, std::move(lowers), merged, image));

  if (fsync(image_fd.get()) != 0) return ErrnoStatus(errno, "fsync(", image, ")");
  if (fchmod(image_fd.get(), 0644) != 0) return ErrnoStatus(errno, "fchmod(", image, ")");
  if (rename(image.c_str(), output.c_str()) != 0) {
    return ErrnoStatus(errno, "rename(", image, ", ", output, ")");
  }
  std::move(remove_image).Cancel();
  return absl::OkStatus();
}

}  // namespace skiff::gen2::guest
