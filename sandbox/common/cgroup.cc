#include "sandbox/common/cgroup.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "sandbox/common/file_io.h"
#include "sandbox/common/status.h"

namespace skiff {
namespace {

constexpr uint64_t kMinCpuQuotaUs = 1000;  // the kernel's minimum cfs quota
constexpr const char* kV2Controllers[] = {"cpu", "memory", "pids"};

// One mount line of /proc/self/mountinfo.
struct MountLine {
  std::string root;
  std::string mount_point;
  std::string fstype;
  std::vector<std::string> super_options;
};

// Undoes mountinfo's octal escapes (\040 for space, \011, \012, \134).
std::string UnescapeMountField(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '7' && s[i + 2] >= '0' &&
        s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
      out.push_back(
          static_cast<char>(((s[i + 1] - '0') << 6) | ((s[i + 2] - '0') << 3) | (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::vector<MountLine> ParseMountInfo(const std::string& text) {
  std::vector<MountLine> mounts;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    auto sep = std::find(f.begin(), f.end(), "-");
    if (sep == f.end() || sep - f.begin() < 6 || f.end() - sep < 4) continue;  // malformed
    MountLine m;
    m.root = UnescapeMountField(f[3]);
    m.mount_point = UnescapeMountField(f[4]);
    m.fstype = *(sep + 1);
    m.super_options = absl::StrSplit(*(sep + 3), ',', absl::SkipEmpty());
    mounts.push_back(std::move(m));
  }
  return mounts;
}

bool Contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

std::vector<std::string> SplitWords(const std::string& s) {
  return absl::StrSplit(s, absl::ByAnyChar(" \t\n"), absl::SkipEmpty());
}

absl::Status ValidateRelPath(const std::string& rel) {
  if (rel.empty() || rel.size() > 512 || rel.front() == '/' || rel.back() == '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("cgroup path \"", rel, "\": must be a non-empty relative path"));
  }
  for (absl::string_view c : absl::StrSplit(rel, '/')) {
    if (c.empty() || c == "." || c == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("cgroup path \"", rel, "\": empty, \".\" or \"..\" component"));
    }
    for (char ch : c) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_' &&
          ch != '.') {
        return absl::InvalidArgumentError(
            absl::StrCat("cgroup path \"", rel, "\": only [A-Za-z0-9._-] and '/' allowed"));
      }
    }
  }
  return absl::OkStatus();
}

// "key value" lines (memory.events, memory.oom_control, cpu.stat).
absl::StatusOr<uint64_t> ReadKeyedValue(const std::string& path, const std::string& key) {
  SKIFF_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> kv = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (kv.size() == 2 && kv[0] == key) {
      uint64_t v;
      if (!absl::SimpleAtoi(kv[1], &v)) {
        return absl::InternalError(absl::StrCat(path, ": bad value for ", key));
      }
      return v;
    }
  }
  return absl::NotFoundError(absl::StrCat(path, ": no \"", key, "\" line"));
}

absl::StatusOr<uint64_t> ReadUint(const std::string& path) {
  SKIFF_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  uint64_t v;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &v)) {
    return absl::InternalError(absl::StrCat(path, ": not a number: \"", text, "\""));
  }
  return v;
}

// CPU weight in proportion to the vCPUs, as Kubernetes maps CPU requests: v1 shares
// 1024 per vCPU (at least 2), v2 weight from shares on the 1..10000 scale.
uint64_t SharesFor(const CgroupLimits& l) {
  return std::clamp<uint64_t>(uint64_t{l.vcpus_milli} * 1024 / 1000, 2, 262144);
}
uint64_t WeightFor(const CgroupLimits& l) { return 1 + (SharesFor(l) - 2) * 9999 / 262142; }

uint64_t QuotaFor(const CgroupLimits& l) {
  uint64_t q = static_cast<uint64_t>(l.vcpus_milli) * l.cpu_period_us / 1000;
  return std::max(q, kMinCpuQuotaUs);
}

}  // namespace

absl::StatusOr<CgroupRoots> CgroupRoots::Detect() { return DetectFrom("/proc/self/mountinfo"); }

absl::StatusOr<CgroupRoots> CgroupRoots::DetectFrom(const std::string& mountinfo_path) {
  SKIFF_ASSIGN_OR_RETURN(std::string text, ReadFileToString(mountinfo_path, 16 << 20));
  CgroupRoots v1;
  v1.version = CgroupVersion::kV1;
  std::string unified_any;
  // A hierarchy mounted at its root ("/") wins over a bind mount of a subtree.
  auto take = [](std::string& slot, bool& slot_at_root, const MountLine& m) {
    bool at_root = m.root == "/";
    if (slot.empty() || (at_root && !slot_at_root)) {
      slot = m.mount_point;
      slot_at_root = at_root;
    }
  };
  bool cpu_r = false, cpuacct_r = false, mem_r = false, pids_r = false, frz_r = false,
       uni_r = false;
  std::string unified_usable;
  for (const MountLine& m : ParseMountInfo(text)) {
    if (m.fstype == "cgroup2") {
      if (unified_any.empty()) unified_any = m.mount_point;
      absl::StatusOr<std::string> ctl = ReadFileToString(m.mount_point + "/cgroup.controllers");
      if (!ctl.ok()) continue;
      std::vector<std::string> c = SplitWords(*ctl);
      if (Contains(c, "cpu") && Contains(c, "memory")) take(unified_usable, uni_r, m);
    } else if (m.fstype == "cgroup") {
      const auto& o = m.super_options;
      if (Contains(o, "cpu")) take(v1.cpu, cpu_r, m);
      if (Contains(o, "cpuacct")) take(v1.cpuacct, cpuacct_r, m);
      if (Contains(o, "memory")) take(v1.memory, mem_r, m);
      if (Contains(o, "pids")) take(v1.pids, pids_r, m);
      if (Contains(o, "freezer")) take(v1.freezer, frz_r, m);
    }
  }
  if (!unified_usable.empty()) {
    CgroupRoots v2;
    v2.version = CgroupVersion::kV2;
    v2.unified = unified_usable;
    return v2;
  }
  if (!v1.cpu.empty() && !v1.memory.empty()) {
    v1.unified = unified_any;  // informational: a controller-less cgroup2 (hybrid)
    return v1;
  }
  return absl::FailedPreconditionError(
      absl::StrCat("cgroup detection from ", mountinfo_path,
                   ": no cgroup2 mount with cpu+memory and no cgroup v1 cpu+memory hierarchies"));
}

struct Cgroup::Impl {
  CgroupRoots roots;
  std::string rel_path;
  // Group directories, one per distinct hierarchy (v2: exactly one).
  std::vector<std::string> dirs;
  std::string cpu_dir, cpuacct_dir, memory_dir, pids_dir, freezer_dir;

  bool v2() const { return roots.version == CgroupVersion::kV2; }
  const std::string& procs_dir() const {
    if (v2()) return dirs.front();
    return !freezer_dir.empty() ? freezer_dir : dirs.front();
  }

  // Hierarchy roots that hold this group, deduplicated (v1 cpu,cpuacct may share one).
  static std::vector<std::string> HierarchyRoots(const CgroupRoots& r) {
    std::vector<std::string> out;
    if (r.version == CgroupVersion::kV2) {
      out.push_back(r.unified);
      return out;
    }
    for (const std::string* p : {&r.cpu, &r.cpuacct, &r.memory, &r.pids, &r.freezer}) {
      if (!p->empty() && !Contains(out, *p)) out.push_back(*p);
    }
    return out;
  }

  static absl::StatusOr<std::shared_ptr<Impl>> Make(const CgroupRoots& roots,
                                                    const std::string& rel) {
    SKIFF_RETURN_IF_ERROR(ValidateRelPath(rel));
    auto impl = std::make_shared<Impl>();
    impl->roots = roots;
    impl->rel_path = rel;
    auto under = [&](const std::string& root) {
      return root.empty() ? std::string() : absl::StrCat(root, "/", rel);
    };
    if (roots.version == CgroupVersion::kV2) {
      if (roots.unified.empty()) {
        return absl::InvalidArgumentError("cgroup roots: v2 without a unified mount");
      }
      std::string d = under(roots.unified);
      impl->cpu_dir = impl->cpuacct_dir = impl->memory_dir = impl->pids_dir = impl->freezer_dir = d;
    } else {
      if (roots.cpu.empty() || roots.memory.empty()) {
        return absl::InvalidArgumentError("cgroup roots: v1 needs the cpu and memory hierarchies");
      }
      impl->cpu_dir = under(roots.cpu);
      impl->cpuacct_dir = under(roots.cpuacct);
      impl->memory_dir = under(roots.memory);
      impl->pids_dir = under(roots.pids);
      impl->freezer_dir = under(roots.freezer);
    }
    for (const std::string& r : HierarchyRoots(roots)) impl->dirs.push_back(under(r));
    return impl;
  }

  absl::Status EnableV2Controllers(const std::string& dir) const {
    SKIFF_ASSIGN_OR_RETURN(std::string avail, ReadFileToString(dir + "/cgroup.controllers"));
    SKIFF_ASSIGN_OR_RETURN(std::string enabled, ReadFileToString(dir + "/cgroup.subtree_control"));
    std::vector<std::string> a = SplitWords(avail), e = SplitWords(enabled);
    std::vector<std::string> want;
    for (const char* c : kV2Controllers) {
      if (Contains(e, c)) continue;
      if (!Contains(a, c)) {
        return absl::FailedPreconditionError(absl::StrCat(
            "cgroup2 controller ", c, " not available in ", dir, "/cgroup.controllers"));
      }
      want.push_back(absl::StrCat("+", c));
    }
    if (want.empty()) return absl::OkStatus();
    return WriteControlFile(dir + "/cgroup.subtree_control", absl::StrJoin(want, " "));
  }

  absl::Status ApplyLimits(const CgroupLimits& l) const {
    if (l.cpu_period_us < 1000 || l.cpu_period_us > 1000000) {
      return absl::InvalidArgumentError(absl::StrCat("cgroup limits: cpu_period_us ",
                                                     l.cpu_period_us, " not in [1000, 1000000]"));
    }
    const uint64_t quota = QuotaFor(l);
    if (v2()) {
      const std::string& d = dirs.front();
      SKIFF_RETURN_IF_ERROR(
          WriteControlFile(d + "/cpu.max", absl::StrCat(quota, " ", l.cpu_period_us)));
      SKIFF_RETURN_IF_ERROR(WriteControlFile(d + "/cpu.weight", absl::StrCat(WeightFor(l))));
      SKIFF_RETURN_IF_ERROR(WriteControlFile(
          d + "/memory.max", l.memory_bytes ? absl::StrCat(l.memory_bytes) : std::string("max")));
      SKIFF_ASSIGN_OR_RETURN(bool has_swap, PathExists(d + "/memory.swap.max"));
      if (has_swap) SKIFF_RETURN_IF_ERROR(WriteControlFile(d + "/memory.swap.max", "0"));
      SKIFF_RETURN_IF_ERROR(WriteControlFile(
          d + "/pids.max", l.pids_max ? absl::StrCat(l.pids_max) : std::string("max")));
      return absl::OkStatus();
    }
    SKIFF_RETURN_IF_ERROR(
        WriteControlFile(cpu_dir + "/cpu.cfs_period_us", absl::StrCat(l.cpu_period_us)));
    SKIFF_RETURN_IF_ERROR(WriteControlFile(cpu_dir + "/cpu.cfs_quota_us", absl::StrCat(quota)));
    SKIFF_RETURN_IF_ERROR(WriteControlFile(cpu_dir + "/cpu.shares", absl::StrCat(SharesFor(l))));
    if (l.memory_bytes) {
      SKIFF_RETURN_IF_ERROR(
          WriteControlFile(memory_dir + "/memory.limit_in_bytes", absl::StrCat(l.memory_bytes)));
      // memory+swap = memory: no swapping past the limit on hosts with swap accounting
      // (the v1 spelling of v2's memory.swap.max = 0).
      SKIFF_ASSIGN_OR_RETURN(bool has_memsw,
                             PathExists(memory_dir + "/memory.memsw.limit_in_bytes"));
      if (has_memsw) {
        SKIFF_RETURN_IF_ERROR(WriteControlFile(memory_dir + "/memory.memsw.limit_in_bytes",
                                               absl::StrCat(l.memory_bytes)));
      }
    }
    if (l.pids_max) {
      if (pids_dir.empty()) {
        return absl::FailedPreconditionError("cgroup limits: pids_max set but no pids hierarchy");
      }
      SKIFF_RETURN_IF_ERROR(WriteControlFile(pids_dir + "/pids.max", absl::StrCat(l.pids_max)));
    }
    return absl::OkStatus();
  }

  enum class FreezeResult { kUnavailable, kFrozen, kFreezing };

  // Best effort: asks the kernel to freeze the group and waits (until `deadline`) for it
  // to report frozen. Anything but kUnavailable must be followed by Thaw().
  FreezeResult Freeze(std::chrono::steady_clock::time_point deadline) const {
    std::string file, request, state_file;
    if (v2()) {
      file = dirs.front() + "/cgroup.freeze";
      request = "1";
      state_file = dirs.front() + "/cgroup.events";
    } else {
      if (freezer_dir.empty()) return FreezeResult::kUnavailable;
      file = state_file = freezer_dir + "/freezer.state";
      request = "FROZEN";
    }
    if (!WriteControlFile(file, request).ok()) return FreezeResult::kUnavailable;
    while (std::chrono::steady_clock::now() < deadline) {
      bool frozen = false;
      if (v2()) {
        absl::StatusOr<uint64_t> f = ReadKeyedValue(state_file, "frozen");
        frozen = f.ok() && *f == 1;
      } else {
        absl::StatusOr<std::string> st = ReadFileToString(state_file);
        frozen = st.ok() && absl::StripAsciiWhitespace(*st) == "FROZEN";
      }
      if (frozen) return FreezeResult::kFrozen;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return FreezeResult::kFreezing;
  }

  absl::Status Thaw() const {
    if (v2()) return WriteControlFile(dirs.front() + "/cgroup.freeze", "0");
    if (freezer_dir.empty()) return absl::OkStatus();
    return WriteControlFile(freezer_dir + "/freezer.state", "THAWED");
  }
};

absl::StatusOr<std::unique_ptr<Cgroup>> Cgroup::Create(const CgroupRoots& roots,
                                                       const std::string& rel_path,
                                                       const CgroupLimits& limits) {
  SKIFF_ASSIGN_OR_RETURN(std::shared_ptr<Impl> impl, Impl::Make(roots, rel_path));
  std::vector<std::string> created;  // in creation order
  absl::Cleanup rollback = [&created] {
    for (auto it = created.rbegin(); it != created.rend(); ++it) rmdir(it->c_str());
  };
  const std::vector<std::string> components = absl::StrSplit(rel_path, '/');
  for (const std::string& root : Impl::HierarchyRoots(roots)) {
    std::string dir = root;
    for (size_t i = 0; i < components.size(); ++i) {
      if (impl->v2()) SKIFF_RETURN_IF_ERROR(impl->EnableV2Controllers(dir));
      dir = absl::StrCat(dir, "/", components[i]);
      const bool leaf = i + 1 == components.size();
      if (mkdir(dir.c_str(), 0755) != 0) {
        if (errno == EEXIST && !leaf) continue;
        if (errno == EEXIST)
          return absl::AlreadyExistsError(absl::StrCat("cgroup ", dir, " exists"));
        return ErrnoStatus(errno, "mkdir(", dir, ")");
      }
      created.push_back(dir);
      if (roots.after_mkdir_for_testing) SKIFF_RETURN_IF_ERROR(roots.after_mkdir_for_testing(dir));
    }
  }
  SKIFF_RETURN_IF_ERROR(Annotate(impl->ApplyLimits(limits), absl::StrCat("cgroup ", rel_path)));
  std::move(rollback).Cancel();
  std::unique_ptr<Cgroup> cg(new Cgroup());
  cg->impl_ = std::move(impl);
  return cg;
}

absl::StatusOr<std::unique_ptr<Cgroup>> Cgroup::Open(const CgroupRoots& roots,
                                                     const std::string& rel_path) {
  SKIFF_ASSIGN_OR_RETURN(std::shared_ptr<Impl> impl, Impl::Make(roots, rel_path));
  for (const std::string& d : impl->dirs) {
    struct stat st;
    if (stat(d.c_str(), &st) != 0) return ErrnoStatus(errno, "cgroup open: stat(", d, ")");
    if (!S_ISDIR(st.st_mode))
      return absl::FailedPreconditionError(absl::StrCat(d, ": not a directory"));
  }
  std::unique_ptr<Cgroup> cg(new Cgroup());
  cg->impl_ = std::move(impl);
  return cg;
}

CgroupVersion Cgroup::version() const { return impl_->roots.version; }
const std::string& Cgroup::rel_path() const { return impl_->rel_path; }

absl::Status Cgroup::AddProcess(pid_t pid) {
  if (pid <= 0) return absl::InvalidArgumentError(absl::StrCat("cgroup add process: pid ", pid));
  for (const std::string& d : impl_->dirs) {
    SKIFF_RETURN_IF_ERROR(WriteControlFile(d + "/cgroup.procs", absl::StrCat(pid)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<pid_t>> Cgroup::Procs() const {
  const std::string path = impl_->procs_dir() + "/cgroup.procs";
  SKIFF_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  std::vector<pid_t> pids;
  for (absl::string_view w : absl::StrSplit(text, absl::ByAnyChar(" \n"), absl::SkipEmpty())) {
    pid_t p;
    if (!absl::SimpleAtoi(w, &p) || p <= 0) {
      return absl::InternalError(absl::StrCat(path, ": bad pid \"", w, "\""));
    }
    pids.push_back(p);
  }
  return pids;
}

absl::Status Cgroup::KillAll(int timeout_ms) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  bool use_kill_file = false;
  if (impl_->v2()) {
    SKIFF_ASSIGN_OR_RETURN(use_kill_file, PathExists(impl_->dirs.front() + "/cgroup.kill"));
  }
  for (;;) {
    SKIFF_ASSIGN_OR_RETURN(std::vector<pid_t> pids, Procs());
    if (pids.empty()) return absl::OkStatus();
    if (Clock::now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat("cgroup ", impl_->rel_path, ": ", pids.size(),
                                                      " process(es) left after kill, e.g. pid ",
                                                      pids.front()));
    }
    if (use_kill_file) {
      SKIFF_RETURN_IF_ERROR(WriteControlFile(impl_->dirs.front() + "/cgroup.kill", "1"));
    } else {
      // Freeze so nothing forks between reading the list and killing it.
      const Impl::FreezeResult freeze =
          impl_->Freeze(std::min(deadline, Clock::now() + std::chrono::milliseconds(200)));
      absl::StatusOr<std::vector<pid_t>> now = Procs();
      for (pid_t p : now.ok() ? *now : pids) kill(p, SIGKILL);
      // SIGKILLed tasks die once thawed (v1) or even while frozen (v2).
      if (freeze != Impl::FreezeResult::kUnavailable) SKIFF_RETURN_IF_ERROR(impl_->Thaw());
    }
    // Give the kernel a moment to tear the processes down before looking again.
    const auto settle = std::min(deadline, Clock::now() + std::chrono::milliseconds(50));
    while (Clock::now() < settle) {
      SKIFF_ASSIGN_OR_RETURN(std::vector<pid_t> left, Procs());
      if (left.empty()) return absl::OkStatus();
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
}

absl::StatusOr<bool> Cgroup::OomKilled() const {
  const std::string path = impl_->v2() ? impl_->memory_dir + "/memory.events"
                                       : impl_->memory_dir + "/memory.oom_control";
  SKIFF_ASSIGN_OR_RETURN(uint64_t n, ReadKeyedValue(path, "oom_kill"));
  return n > 0;
}

absl::StatusOr<uint64_t> Cgroup::CpuUsageNs() const {
  if (impl_->v2()) {
    SKIFF_ASSIGN_OR_RETURN(uint64_t us, ReadKeyedValue(impl_->cpu_dir + "/cpu.stat", "usage_usec"));
    return us * 1000;
  }
  if (impl_->cpuacct_dir.empty()) {
    return absl::FailedPreconditionError("cgroup cpu usage: no cpuacct hierarchy");
  }
  return ReadUint(impl_->cpuacct_dir + "/cpuacct.usage");
}

absl::StatusOr<CpuQuota> Cgroup::OpenCpuQuota() const {
  uint64_t period;
  std::string path;
  if (impl_->v2()) {
    path = impl_->cpu_dir + "/cpu.max";
    SKIFF_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
    std::vector<std::string> f = SplitWords(text);
    if (f.size() != 2 || !absl::SimpleAtoi(f[1], &period)) {
      return absl::InternalError(absl::StrCat(path, ": unexpected content \"", text, "\""));
    }
  } else {
    path = impl_->cpu_dir + "/cpu.cfs_quota_us";
    SKIFF_ASSIGN_OR_RETURN(period, ReadUint(impl_->cpu_dir + "/cpu.cfs_period_us"));
  }
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, "open(", path, ")");
  return CpuQuota(std::move(fd), impl_->roots.version, period);
}

absl::Status Cgroup::Destroy() {
  absl::Status first;
  for (const std::string& d : impl_->dirs) {
    // A group whose last task just exited can stay busy for a moment.
    for (int attempt = 0;; ++attempt) {
      if (rmdir(d.c_str()) == 0 || errno == ENOENT) break;
      if (errno == EBUSY && attempt < 100) {
        absl::StatusOr<std::string> procs = ReadFileToString(d + "/cgroup.procs");
        if (procs.ok() && !absl::StripAsciiWhitespace(*procs).empty()) {
          if (first.ok()) {
            first = absl::FailedPreconditionError(
                absl::StrCat("rmdir(", d, "): EBUSY (group still has processes)"));
          }
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        continue;
      }
      if (first.ok()) first = ErrnoStatus(errno, "rmdir(", d, ")");
      break;
    }
  }
  return first;
}

absl::Status CpuQuota::Set(uint64_t quota_us) {
  if (quota_us < kMinCpuQuotaUs) {
    return absl::InvalidArgumentError(
        absl::StrCat("cpu quota ", quota_us, " us: below the kernel minimum of 1000 us"));
  }
  char buf[48];
  int len = version_ == CgroupVersion::kV2
                ? snprintf(buf, sizeof(buf), "%llu %llu", static_cast<unsigned long long>(quota_us),
                           static_cast<unsigned long long>(period_us_))
                : snprintf(buf, sizeof(buf), "%llu", static_cast<unsigned long long>(quota_us));
  ssize_t n = pwrite(fd_.get(), buf, static_cast<size_t>(len), 0);
  if (n != len) {
    return ErrnoStatus(n < 0 ? errno : EIO, "write(cpu quota fd ", fd_.get(), ", \"", buf, "\")");
  }
  return absl::OkStatus();
}

}  // namespace skiff
