#include "sandbox/gen2/guest/init/root_fs.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/common/unique_fd.h"

namespace skiff::gen2::init {

namespace {

constexpr const char* kLowerDir = "/skiff/lower";
constexpr const char* kLayerDir = "/skiff/layer";
constexpr const char* kUpperDir = "/skiff/layer/upper";
constexpr const char* kWorkDir = "/skiff/layer/work";
constexpr int kDeviceWaitTries = 100;
constexpr long kDeviceWaitNs = 10 * 1000 * 1000;

StepResult MakeDir(const char* path, mode_t mode) {
  if (mkdir(path, mode) != 0 && errno != EEXIST) {
    return StepFail(errno, std::string("mkdir(") + path + ")");
  }
  return StepOk();
}

StepResult MountLower(const control::InstanceSpec& spec) {
  for (int i = 0;; ++i) {
    if (mount(spec.root_device.c_str(), kLowerDir, spec.root_fstype.c_str(), MS_RDONLY, nullptr) ==
        0) {
      return StepOk();
    }
    if ((errno != ENOENT && errno != ENXIO) || i + 1 == kDeviceWaitTries) break;
    timespec ts = {0, kDeviceWaitNs};
    nanosleep(&ts, nullptr);
  }
  return StepFail(
      errno, "mount(" + spec.root_device + ", " + kLowerDir + ", " + spec.root_fstype + ", ro)");
}

// Opens the directory `name` under `dir`, creating it if missing; a symlink is refused.
StepResult OpenChildDir(int dir, const std::string& name, const std::string& path, UniqueFd* out) {
  if (mkdirat(dir, name.c_str(), 0755) != 0 && errno != EEXIST) {
    return StepFail(errno, "mkdir(" + path + ")");
  }
  *out = UniqueFd(openat(dir, name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!*out) return StepFail(errno, "open(" + path + ", O_DIRECTORY|O_NOFOLLOW)");
  return StepOk();
}

StepResult WriteAll(int fd, const std::string& data, const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return StepFail(errno, "write(" + path + ")");
    }
    done += static_cast<size_t>(n);
  }
  return StepOk();
}

StepResult WriteFile(const std::string& root, const control::GuestFile& file) {
  UniqueFd dir(open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return StepFail(errno, "open(" + root + ")");
  // Walk the parent components one by one (the path is validated: absolute, no . or ..).
  std::string walked = root;
  size_t pos = 1;
  while (true) {
    size_t slash = file.path.find('/', pos);
    if (slash == std::string::npos) break;
    std::string part = file.path.substr(pos, slash - pos);
    pos = slash + 1;
    if (part.empty()) continue;
    walked += "/" + part;
    UniqueFd next;
    if (StepResult r = OpenChildDir(dir.get(), part, walked, &next); !r.ok()) return r;
    dir = std::move(next);
  }
  const std::string name = file.path.substr(pos);
  const std::string path = root + file.path;
  struct stat st;
  if (fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
    if (unlinkat(dir.get(), name.c_str(), 0) != 0) return StepFail(errno, "unlink(" + path + ")");
  }
  UniqueFd out(
      openat(dir.get(), name.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!out) return StepFail(errno, "open(" + path + ", O_CREAT)");
  return WriteAll(out.get(), file.content, path);
}

}  // namespace

StepResult MountRoot(const control::InstanceSpec& spec) {
  for (const char* dir : {kStagingDir, kLowerDir, kLayerDir, kNewRoot}) {
    if (StepResult r = MakeDir(dir, 0700); !r.ok()) return r;
  }
  if (StepResult r = MountLower(spec); !r.ok()) return r;
  const std::string tmpfs_data = "size=" + std::to_string(spec.tmpfs_bytes) + ",mode=0755";
  if (mount("skiff-layer", kLayerDir, "tmpfs", MS_NOSUID | MS_NODEV, tmpfs_data.c_str()) != 0) {
    return StepFail(errno, std::string("mount(tmpfs, ") + kLayerDir + ", " + tmpfs_data + ")");
  }
  for (const char* dir : {kUpperDir, kWorkDir}) {
    if (StepResult r = MakeDir(dir, 0755); !r.ok()) return r;
  }
  const std::string overlay_data =
      std::string("lowerdir=") + kLowerDir + ",upperdir=" + kUpperDir + ",workdir=" + kWorkDir;
  if (mount("overlay", kNewRoot, "overlay", 0, overlay_data.c_str()) != 0) {
    return StepFail(errno, std::string("mount(overlay, ") + kNewRoot + ", " + overlay_data + ")");
  }
  return StepOk();
}

StepResult WriteFiles(const std::string& root, const std::vector<control::GuestFile>& files) {
  for (const control::GuestFile& file : files) {
    if (StepResult r = WriteFile(root, file); !r.ok()) return r;
  }
  return StepOk();
}

StepResult SwitchRoot(const std::string& new_root) {
  unlink("/init");  // best effort: the running binary stays mapped
  if (chdir(new_root.c_str()) != 0) return StepFail(errno, "chdir(" + new_root + ")");
  if (mount(new_root.c_str(), "/", nullptr, MS_MOVE, nullptr) != 0) {
    return StepFail(errno, "mount(MS_MOVE, " + new_root + ", /)");
  }
  if (chroot(".") != 0) return StepFail(errno, "chroot(" + new_root + ")");
  if (chdir("/") != 0) return StepFail(errno, "chdir(/)");
  return StepOk();
}

}  // namespace skiff::gen2::init
