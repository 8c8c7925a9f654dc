#include "sandbox/gen2/guest/init/modules.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox/common/unique_fd.h"

namespace skiff::gen2::init {

namespace {

StepResult ReadFile(const std::string& path, std::string* out) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return StepFail(errno, "open(" + path + ")");
  char buf[4096];
  while (true) {
    ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return StepFail(errno, "read(" + path + ")");
    }
    if (n == 0) return StepOk();
    out->append(buf, static_cast<size_t>(n));
  }
}

std::string Normalize(std::string_view name) {
  std::string out(name);
  for (char& c : out) {
    if (c == '-') c = '_';
  }
  return out;
}

std::string Dirname(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

}  // namespace

std::string ModuleParams(std::string_view cmdline, std::string_view name) {
  const std::string prefix = Normalize(name) + ".";
  std::string params;
  size_t pos = 0;
  while (pos < cmdline.size()) {
    while (pos < cmdline.size() && (cmdline[pos] == ' ' || cmdline[pos] == '\n')) ++pos;
    size_t end = pos;
    bool quoted = false;
    while (end < cmdline.size() && (quoted || (cmdline[end] != ' ' && cmdline[end] != '\n'))) {
      if (cmdline[end] == '"') quoted = !quoted;
      ++end;
    }
    std::string_view word = cmdline.substr(pos, end - pos);
    pos = end;
    size_t dot = word.find('.');
    size_t eq = word.find('=');
    if (dot == std::string_view::npos || (eq != std::string_view::npos && eq < dot)) continue;
    if (Normalize(word.substr(0, dot + 1)) != prefix) continue;
    // "module.=x" has no parameter name: not passed on.
    if (dot + 1 == word.size() || word[dot + 1] == '=') continue;
    if (!params.empty()) params += ' ';
    params += word.substr(dot + 1);
  }
  return params;
}

StepResult LoadModules(const std::string& list_path) {
  if (access(list_path.c_str(), F_OK) != 0) {
    if (errno == ENOENT) return StepOk();  // everything built in
    return StepFail(errno, "access(" + list_path + ")");
  }
  std::string list;
  if (StepResult r = ReadFile(list_path, &list); !r.ok()) return r;
  std::string cmdline;
  if (StepResult r = ReadFile("/proc/cmdline", &cmdline); !r.ok()) return r;
  const std::string dir = Dirname(list_path);
  size_t pos = 0;
  while (pos < list.size()) {
    size_t end = list.find('\n', pos);
    if (end == std::string::npos) end = list.size();
    std::string file = list.substr(pos, end - pos);
    pos = end + 1;
    if (file.empty()) continue;
    if (file.find('/') != std::string::npos || file.size() < 4 ||
        file.compare(file.size() - 3, 3, ".ko") != 0) {
      return StepFail(EINVAL, "module list " + list_path + ": bad entry " + file);
    }
    std::string path = dir + "/" + file;
    UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return StepFail(errno, "open(" + path + ")");
    std::string params = ModuleParams(cmdline, file.substr(0, file.size() - 3));
    if (syscall(SYS_finit_module, fd.get(), params.c_str(), 0) != 0 && errno != EEXIST) {
      return StepFail(errno, "finit_module(" + path + ")");
    }
    unlink(path.c_str());
  }
  return StepOk();
}

}  // namespace skiff::gen2::init
