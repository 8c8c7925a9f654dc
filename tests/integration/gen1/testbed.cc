#include "tests/integration/gen1/testbed.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "sandbox/common/unique_fd.h"

namespace skiff::testbed {

namespace fs = std::filesystem;

TempDir::TempDir(const std::string& prefix) {
  std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) abort();
  path_ = buf.data();
  chmod(path_.c_str(), 0755);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

void WriteTestFile(const std::string& path, const std::string& content, int mode) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  chmod(path.c_str(), static_cast<mode_t>(mode));
}

std::string ReadTestFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool PathExists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

void BuildBusyboxRootfs(const std::string& dir) {
  for (const char* d : {"bin", "etc", "proc", "sys", "dev", "tmp", "root", "mnt", "www"}) {
    fs::create_directories(dir + "/" + d);
  }
  chmod((dir + "/tmp").c_str(), 01777);
  fs::copy_file("/bin/busybox", dir + "/bin/busybox", fs::copy_options::overwrite_existing);
  chmod((dir + "/bin/busybox").c_str(), 0755);
  FILE* list = popen("/bin/busybox --list", "r");
  char name[256];
  while (list != nullptr && fgets(name, sizeof(name), list) != nullptr) {
    std::string applet(name);
    while (!applet.empty() && (applet.back() == '\n' || applet.back() == '\r')) applet.pop_back();
    if (applet.empty() || applet == "busybox") continue;
    std::string link = dir + "/bin/" + applet;
    if (!PathExists(link)) (void)!symlink("busybox", link.c_str());
  }
  if (list != nullptr) pclose(list);
  WriteTestFile(dir + "/etc/passwd",
                "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n");
  WriteTestFile(dir + "/etc/group", "root:x:0:\nnogroup:x:65534:\n");
  WriteTestFile(dir + "/www/index.html", "hello from skiff\n");
}

InstanceNames UniqueNames() {
  static std::atomic<int> counter{0};
  int n = counter++;
  pid_t pid = getpid();
  InstanceNames names;
  names.id = "t" + std::to_string(pid) + "-" + std::to_string(n);
  names.cgroup_path = "skiff-gen1-test-" + std::to_string(pid) + "/" + names.id;
  char veth[16];
  snprintf(veth, sizeof(veth), "skt%06x%03x", static_cast<unsigned>(pid) & 0xffffff,
           static_cast<unsigned>(n) & 0xfff);
  names.host_veth = veth;
  // 10.201.<a>.<b>/31 pairs, spread by pid and counter.
  unsigned slot = (static_cast<unsigned>(pid) * 37u + static_cast<unsigned>(n)) % (256u * 127u);
  unsigned a = slot / 127u;
  unsigned b = (slot % 127u) * 2u;
  names.host_ip = "10.201." + std::to_string(a) + "." + std::to_string(b);
  names.instance_ip = "10.201." + std::to_string(a) + "." + std::to_string(b + 1);
  names.marker = names.id + "-marker";
  return names;
}

namespace {

const char* const kHierarchies[] = {"cpu", "cpuacct", "memory", "pids", "freezer", "unified"};

std::vector<std::string> MountLines() {
  std::vector<std::string> lines;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // Drop the mount id / parent id: compare what is mounted where.
    size_t sp = line.find(' ');
    sp = line.find(' ', sp + 1);
    lines.push_back(line.substr(sp + 1));
  }
  std::sort(lines.begin(), lines.end());
  return lines;
}

}  // namespace

void RemoveTestCgroupParents() {
  std::string parent = "skiff-gen1-test-" + std::to_string(getpid());
  for (const char* h : kHierarchies)
    rmdir(("/sys/fs/cgroup/" + std::string(h) + "/" + parent).c_str());
}

HostSnapshot HostSnapshot::Take() {
  HostSnapshot s;
  s.mounts_ = MountLines();
  return s;
}

std::vector<std::string> HostSnapshot::Leaks(const InstanceNames& names,
                                             const std::vector<std::string>& paths_gone) const {
  std::vector<std::string> leaks;
  std::vector<std::string> now = MountLines();
  std::vector<std::string> added;
  std::set_difference(now.begin(), now.end(), mounts_.begin(), mounts_.end(),
                      std::back_inserter(added));
  for (const std::string& m : added) {
    // Only what an instance could leak: its fs types or paths under /tmp.
    if (m.find(" overlay ") != std::string::npos || m.find(" proc ") != std::string::npos ||
        m.find(" sysfs ") != std::string::npos || m.find(" devpts ") != std::string::npos ||
        m.find(" tmpfs ") != std::string::npos || m.find("/tmp/") != std::string::npos) {
      leaks.push_back("mount: " + m);
    }
  }
  for (const char* h : kHierarchies) {
    std::string dir = "/sys/fs/cgroup/" + std::string(h) + "/" + names.cgroup_path;
    if (PathExists(dir)) leaks.push_back("cgroup dir: " + dir);
  }
  if (PathExists("/sys/class/net/" + names.host_veth)) {
    leaks.push_back("link: " + names.host_veth);
  }
  for (pid_t pid : ProcessesWithMarker(names.marker)) {
    leaks.push_back("process: " + std::to_string(pid));
  }
  for (const std::string& p : paths_gone) {
    if (PathExists(p)) leaks.push_back("path: " + p);
  }
  return leaks;
}

::skiff::testing::HostStateOptions HostStateOptionsForTests() {
  ::skiff::testing::HostStateOptions options;
  options.cgroup_prefixes = {"skiff-gen1-test"};
  return options;
}

std::string LeakedLines(const std::string& diff) {
  std::string out;
  std::istringstream in(diff);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("leaked ", 0) != 0) continue;
    // Links: only ours ("skt..."); other suites may be mid-test on a shared machine.
    if (line.rfind("leaked link: ", 0) == 0 && line.rfind("leaked link: skt", 0) != 0) continue;
    out += line + "\n";
  }
  return out;
}

std::vector<pid_t> ProcessesWithMarker(const std::string& marker) {
  std::vector<pid_t> pids;
  std::string needle = "SKIFF_TEST_MARKER=" + marker;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return pids;
  while (dirent* e = readdir(proc)) {
    char* end;
    long pid = strtol(e->d_name, &end, 10);
    if (*end != '\0' || pid <= 0) continue;
    std::string env = ReadTestFile("/proc/" + std::string(e->d_name) + "/environ");
    size_t pos = 0;
    while (pos < env.size()) {
      size_t nul = env.find('\0', pos);
      if (nul == std::string::npos) nul = env.size();
      if (env.compare(pos, nul - pos, needle) == 0) {
        pids.push_back(static_cast<pid_t>(pid));
        break;
      }
      pos = nul + 1;
    }
  }
  closedir(proc);
  return pids;
}

std::string HttpGet(const std::string& ip, uint16_t port, const std::string& path) {
  UniqueFd sock(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!sock) return "";
  int fd = sock.get();
  timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, ip.c_str(), &addr.sin_addr);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    std::string req = "GET " + path + " HTTP/1.0\r\nHost: " + ip + "\r\n\r\n";
    if (write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[4096];
      ssize_t n;
      while ((n = read(fd, buf, sizeof(buf))) > 0) response.append(buf, static_cast<size_t>(n));
    }
  }
  return response;
}

int64_t SmapsRollupBytes(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps_rollup");
  std::string line;
  while (std::getline(in, line)) {
    long kb;
    char name[64];
    if (sscanf(line.c_str(), "%63[^:]: %ld kB", name, &kb) == 2 && field == name) {
      return static_cast<int64_t>(kb) * 1024;
    }
  }
  return -1;
}

int64_t PrivateBytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps_rollup");
  std::string key;
  int64_t total = 0;
  bool found = false;
  std::string line;
  while (std::getline(in, line)) {
    long kb;
    char name[64];
    if (sscanf(line.c_str(), "%63[^:]: %ld kB", name, &kb) == 2 &&
        (strcmp(name, "Private_Clean") == 0 || strcmp(name, "Private_Dirty") == 0)) {
      total += kb * 1024;
      found = true;
    }
  }
  return found ? total : -1;
}

}  // namespace skiff::testbed
