#include "tests/support/registry.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "sandbox/common/file_io.h"
#include "sandbox/common/status.h"
#include "sandbox/common/unique_fd.h"

namespace skiff::testing {
namespace {

constexpr int kStartAttempts = 5;
constexpr absl::Duration kReadyTimeout = absl::Seconds(15);
constexpr absl::Duration kStopGrace = absl::Seconds(3);

// The last `n` bytes of a file, for error messages.
std::string Tail(const std::string& path, size_t n = 2000) {
  absl::StatusOr<std::string> content = ReadFileToString(path, 64 << 20);
  if (!content.ok()) return absl::StrCat("(", content.status().message(), ")");
  if (content->size() > n) return "..." + content->substr(content->size() - n);
  return *content;
}

// A port that was free on 127.0.0.1 a moment ago (the caller retries if it is taken).
absl::StatusOr<int> PickFreePort() {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoStatus(errno, "socket(AF_INET)");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return ErrnoStatus(errno, "bind(127.0.0.1:0)");
  }
  socklen_t len = sizeof(addr);
  if (getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return ErrnoStatus(errno, "getsockname(127.0.0.1:0)");
  }
  return ntohs(addr.sin_port);
}

// Forks and execs argv with stdin from /dev/null and stdout+stderr to log_path. The child
// gets SIGKILL when the calling thread dies. It allocates nothing between fork and exec.
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& argv, const std::string& log_path) {
  if (argv.empty()) return absl::InvalidArgumentError("Spawn: empty argv");
  UniqueFd log(open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!log) return ErrnoStatus(errno, "open(", log_path, ")");
  UniqueFd null(open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!null) return ErrnoStatus(errno, "open(/dev/null)");
  std::vector<char*> cargv;
  for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) return ErrnoStatus(errno, "fork(", argv[0], ")");
  if (pid == 0) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(126);
    if (dup2(null.get(), 0) < 0 || dup2(log.get(), 1) < 0 || dup2(log.get(), 2) < 0) _exit(126);
    execvp(cargv[0], cargv.data());
    _exit(127);
  }
  return pid;
}

// waitpid() without EINTR; returns the wait status.
absl::StatusOr<int> Wait(pid_t pid, int flags, bool* exited) {
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid, &status, flags);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return ErrnoStatus(errno, "waitpid(", pid, ")");
  *exited = r == pid;
  return status;
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exit status ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("killed by signal ", WTERMSIG(status));
  return absl::StrCat("wait status ", status);
}

void CurlGlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t AppendBody(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

size_t AppendHeader(char* data, size_t size, size_t n, void* out) {
  std::string line(data, size * n);
  size_t colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = absl::AsciiStrToLower(line.substr(0, colon));
    std::string value(absl::StripAsciiWhitespace(line.substr(colon + 1)));
    (*static_cast<std::map<std::string, std::string>*>(out))[name] = value;
  }
  return size * n;
}

absl::StatusOr<HttpResponse> HttpRequest(const std::string& url,
                                         const std::vector<std::string>& headers, bool head) {
  CurlGlobalInit();
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
  curl_slist* list = nullptr;
  for (const std::string& h : headers) list = curl_slist_append(list, h.c_str());
  HttpResponse response;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 60000L);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, AppendBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, AppendHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &response.headers);
  if (head) curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  CURLcode rc = curl_easy_perform(curl);
  if (rc == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  curl_slist_free_all(list);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) {
    return absl::UnavailableError(
        absl::StrCat(head ? "HEAD " : "GET ", url, ": ", curl_easy_strerror(rc)));
  }
  return response;
}

std::string ConfigYaml(const std::string& dir, int port) {
  return absl::StrCat(
      "version: 0.1\n"
      "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
      "storage:\n  filesystem:\n    rootdirectory: ",
      dir,
      "/data\n"
      "  delete:\n    enabled: true\n"
      "  maintenance:\n    uploadpurging:\n      enabled: false\n"
      "http:\n  addr: 127.0.0.1:",
      port, "\n");
}

}  // namespace

bool ProcessRunning(pid_t pid) {
  if (pid <= 0 || (kill(pid, 0) != 0 && errno == ESRCH)) return false;
  absl::StatusOr<std::string> stat = ReadFileToString(absl::StrCat("/proc/", pid, "/stat"));
  if (!stat.ok()) return false;
  // "pid (comm) S ...": the state follows the last ')'.
  size_t paren = stat->rfind(')');
  return paren == std::string::npos || paren + 2 >= stat->size() || (*stat)[paren + 2] != 'Z';
}

absl::StatusOr<HttpResponse> HttpGet(const std::string& url,
                                     const std::vector<std::string>& headers) {
  return HttpRequest(url, headers, /*head=*/false);
}

absl::Status RunCommand(const std::vector<std::string>& argv, const std::string& log_path) {
  SKIFF_ASSIGN_OR_RETURN(pid_t pid, Spawn(argv, log_path));
  bool exited = false;
  SKIFF_ASSIGN_OR_RETURN(int status, Wait(pid, 0, &exited));
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(
      absl::StrJoin(argv, " "), ": ", DescribeWaitStatus(status), "; output:\n", Tail(log_path)));
}

LocalRegistry::LocalRegistry(std::string dir, int port, pid_t pid)
    : dir_(std::move(dir)), port_(port), address_(absl::StrCat("127.0.0.1:", port)), pid_(pid) {}

absl::StatusOr<std::unique_ptr<LocalRegistry>> LocalRegistry::Start() {
  std::string dir_template = "/tmp/skiff-registry-XXXXXX";
  if (mkdtemp(dir_template.data()) == nullptr) {
    return ErrnoStatus(errno, "mkdtemp(", dir_template, ")");
  }
  // Owns the directory (and any started registry) until it is handed over.
  std::unique_ptr<LocalRegistry> registry(new LocalRegistry(dir_template, 0, -1));
  if (mkdir((dir_template + "/data").c_str(), 0755) != 0) {
    return ErrnoStatus(errno, "mkdir(", dir_template, "/data)");
  }
  const std::string config = dir_template + "/config.yml";
  const std::string log = dir_template + "/registry.log";
  std::string last_error;
  for (int attempt = 1; attempt <= kStartAttempts; ++attempt) {
    SKIFF_ASSIGN_OR_RETURN(int port, PickFreePort());
    SKIFF_RETURN_IF_ERROR(WriteNewFile(config, ConfigYaml(dir_template, port)));
    SKIFF_ASSIGN_OR_RETURN(pid_t pid, Spawn({"docker-registry", "serve", config}, log));
    registry->port_ = port;
    registry->address_ = absl::StrCat("127.0.0.1:", port);
    registry->pid_ = pid;
    const absl::Time deadline = absl::Now() + kReadyTimeout;
    bool exited = false;
    while (absl::Now() < deadline) {
      SKIFF_ASSIGN_OR_RETURN(int status, Wait(pid, WNOHANG, &exited));
      if (exited) {
        registry->pid_ = -1;
        last_error = absl::StrCat("docker-registry on port ", port, ": ",
                                  DescribeWaitStatus(status), ": ", Tail(log, 500));
        break;
      }
      absl::StatusOr<HttpResponse> r = registry->Get("/v2/");
      if (r.ok() && r->status == 200) return registry;
      absl::SleepFor(absl::Milliseconds(20));
    }
    if (!exited) {
      registry->Kill();
      last_error =
          absl::StrCat("docker-registry on port ", port, " did not answer GET /v2/ within ",
                       absl::FormatDuration(kReadyTimeout), ": ", Tail(log, 500));
    }
  }
  return absl::UnavailableError(absl::StrCat("LocalRegistry::Start: ", last_error));
}

LocalRegistry::~LocalRegistry() {
  Kill();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

void LocalRegistry::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  bool exited = false;
  const absl::Time deadline = absl::Now() + kStopGrace;
  while (!exited && absl::Now() < deadline) {
    if (!Wait(pid_, WNOHANG, &exited).ok()) break;
    if (!exited) absl::SleepFor(absl::Milliseconds(10));
  }
  if (!exited) {
    kill(pid_, SIGKILL);
    (void)Wait(pid_, 0, &exited);
  }
  pid_ = -1;
}

std::string LocalRegistry::Reference(const std::string& name, const std::string& tag) const {
  return absl::StrCat(address_, "/skiff/", name, ":", tag);
}

absl::Status LocalRegistry::PushExampleImages(const std::vector<std::string>& names) {
  if (names.empty()) return absl::InvalidArgumentError("PushExampleImages: no image names");
  return RunCommand({"bash", SourceDir() + "/scripts/images/build.sh", "--registry", address_,
                     "--only", absl::StrJoin(names, ",")},
                    dir_ + "/push.log");
}

absl::Status LocalRegistry::PushTestApp() {
  const char* build = getenv("SKIFF_BUILD_DIR");
  std::string bin = absl::StrCat(build ? build : ".", "/tests/payloads/testapp/skiff-testapp");
  if (access(bin.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("PushTestApp: ", bin, " is missing (build the skiff-testapp target)"));
  }
  return RunCommand({"bash", SourceDir() + "/scripts/images/build.sh", "--registry", address_,
                     "--only", "testapp", "--testapp-bin", bin},
                    dir_ + "/push.log");
}

std::string LocalRegistry::BlobPath(const std::string& digest) const {
  std::string hex = digest.substr(digest.find(':') + 1);
  return absl::StrCat(dir_, "/data/docker/registry/v2/blobs/sha256/", hex.substr(0, 2), "/", hex,
                      "/data");
}

absl::StatusOr<HttpResponse> LocalRegistry::Get(const std::string& path,
                                                const std::vector<std::string>& headers) const {
  return HttpRequest(absl::StrCat("http://", address_, path), headers, /*head=*/false);
}

absl::StatusOr<HttpResponse> LocalRegistry::Head(const std::string& path,
                                                 const std::vector<std::string>& headers) const {
  return HttpRequest(absl::StrCat("http://", address_, path), headers, /*head=*/true);
}

}  // namespace skiff::testing
