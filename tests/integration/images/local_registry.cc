#include "tests/integration/images/local_registry.h"

#include <arpa/inet.h>
#include <crypt.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "images/digest.h"
#include "images/fs_ops.h"
#include "sandbox/common/status.h"
#include "sandbox/common/unique_fd.h"

extern char** environ;

namespace skiff::images::testing {
namespace {

struct HttpResult {
  long status = 0;
  std::string location;
  std::string body;
};

size_t Append(char* d, size_t s, size_t n, void* u) {
  static_cast<std::string*>(u)->append(d, s * n);
  return s * n;
}
size_t Header(char* d, size_t s, size_t n, void* u) {
  std::string line(d, s * n);
  if (line.size() > 9 && strncasecmp(line.c_str(), "location:", 9) == 0) {
    std::string v = line.substr(9);
    while (!v.empty() && (v.front() == ' ')) v.erase(v.begin());
    while (!v.empty() && (v.back() == '\r' || v.back() == '\n')) v.pop_back();
    *static_cast<std::string*>(u) = v;
  }
  return s * n;
}

absl::StatusOr<HttpResult> Http(const std::string& method, const std::string& url,
                                const std::string& body, const std::string& content_type,
                                const PushAuth& auth, bool verify = true) {
  CURL* c = curl_easy_init();
  HttpResult r;
  curl_slist* headers = nullptr;
  if (!content_type.empty()) {
    headers = curl_slist_append(headers, ("Content-Type: " + content_type).c_str());
  }
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  if (method != "GET") {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, Header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &r.location);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  if (!auth.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, auth.ca_file.c_str());
  if (!verify) curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
  std::string userpwd = auth.username + ":" + auth.password;
  if (!auth.username.empty()) curl_easy_setopt(c, CURLOPT_USERPWD, userpwd.c_str());
  CURLcode rc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(c);
  if (rc != CURLE_OK) {
    return absl::UnavailableError(absl::StrCat(method, " ", url, ": ", curl_easy_strerror(rc)));
  }
  return r;
}

}  // namespace

TempDir::TempDir() {
  char tmpl[] = "/tmp/skiff-images-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) abort();
  path_ = tmpl;
}

TempDir::~TempDir() { RemoveTree(path_).IgnoreError(); }

absl::Status RunCommand(const std::vector<std::string>& argv, const std::string& log) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return ErrnoStatus(rc, "posix_spawn(", argv[0], ")");
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(
        absl::StrCat(absl::StrJoin(argv, " "), ": exit status ", status, " (see ", log, ")"));
  }
  return absl::OkStatus();
}

int FreePort() {
  UniqueFd s(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(s.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    abort();
  }
  return ntohs(addr.sin_port);
}

absl::StatusOr<TestCa> MakeTestCa(const std::string& dir) {
  TestCa ca{dir + "/ca.pem", dir + "/server.pem", dir + "/server.key"};
  const std::string log = dir + "/openssl.log";
  const std::string ext = dir + "/san.ext";
  std::ofstream(ext) << "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n";
  SKIFF_RETURN_IF_ERROR(
      RunCommand({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                  "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", dir + "/ca.key", "-out",
                  ca.ca_cert, "-days", "2", "-subj", "/CN=skiff test CA"},
                 log));
  SKIFF_RETURN_IF_ERROR(RunCommand(
      {"openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
       "-keyout", ca.server_key, "-out", dir + "/server.csr", "-subj", "/CN=127.0.0.1"},
      log));
  SKIFF_RETURN_IF_ERROR(RunCommand(
      {"openssl", "x509", "-req", "-in", dir + "/server.csr", "-CA", ca.ca_cert, "-CAkey",
       dir + "/ca.key", "-CAcreateserial", "-out", ca.server_cert, "-days", "2", "-extfile", ext},
      log));
  return ca;
}

absl::StatusOr<std::string> HtpasswdLine(const std::string& user, const std::string& password) {
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  if (crypt_gensalt_rn("$2b$", 5, nullptr, 0, salt, sizeof(salt)) == nullptr) {
    return ErrnoStatus(errno, "crypt_gensalt($2b$)");
  }
  struct crypt_data data {};
  const char* hash = crypt_r(password.c_str(), salt, &data);
  if (hash == nullptr || hash[0] == '*') return ErrnoStatus(errno, "crypt(bcrypt)");
  return user + ":" + hash;
}

absl::StatusOr<std::unique_ptr<LocalRegistry>> LocalRegistry::Start(
    const RegistryOptions& options) {
  std::unique_ptr<LocalRegistry> r(new LocalRegistry());
  r->dir_ = std::make_unique<TempDir>();
  r->port_ = FreePort();
  r->tls_ = !options.tls_cert.empty();
  const std::string& dir = r->dir_->path();
  std::string config = absl::StrCat(
      "version: 0.1\n"
      "log:\n  level: error\n  accesslog:\n    disabled: true\n"
      "storage:\n  filesystem:\n    rootdirectory: ",
      dir, "/storage\n  delete:\n    enabled: true\n", "http:\n  addr: 127.0.0.1:", r->port_, "\n");
  if (r->tls_) {
    absl::StrAppend(&config, "  tls:\n    certificate: ", options.tls_cert,
                    "\n    key: ", options.tls_key, "\n");
  }
  if (!options.htpasswd_file.empty()) {
    absl::StrAppend(&config,
                    "auth:\n  htpasswd:\n    realm: skiff-test\n    path: ", options.htpasswd_file,
                    "\n");
  }
  std::ofstream(dir + "/config.yml") << config;
  std::string log = dir + "/registry.log";
  std::string cfg = dir + "/config.yml";
  const char* argv[] = {"/usr/bin/docker-registry", "serve", cfg.c_str(), nullptr};
  pid_t parent = getpid();
  r->pid_ = fork();
  if (r->pid_ < 0) return ErrnoStatus(errno, "fork(docker-registry)");
  if (r->pid_ == 0) {
    // Only async-signal-safe calls here. The registry dies with the test process, even
    // when a test crashes before the destructor runs.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0) _exit(127);
    execve(argv[0], const_cast<char**>(argv), environ);
    _exit(127);
  }
  // Ready when /v2/ answers at all (401 with auth).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (std::chrono::steady_clock::now() < deadline) {
    auto h = Http("GET", r->base_url() + "/v2/", "", "", {}, /*verify=*/false);
    if (h.ok() && h->status > 0) return r;
    int status;
    if (waitpid(r->pid_, &status, WNOHANG) == r->pid_) {
      r->pid_ = -1;
      std::ifstream f(log);
      return absl::InternalError("docker-registry exited: " +
                                 std::string(std::istreambuf_iterator<char>(f), {}));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return absl::DeadlineExceededError("docker-registry did not answer within 15 s");
}

LocalRegistry::~LocalRegistry() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
}

std::string LocalRegistry::BlobDataPath(const std::string& digest) const {
  std::string hex = DigestHex(digest);
  return absl::StrCat(dir_->path(), "/storage/docker/registry/v2/blobs/sha256/", hex.substr(0, 2),
                      "/", hex, "/data");
}

absl::StatusOr<std::string> PushBlob(const std::string& base_url, const std::string& repo,
                                     const std::string& data, const PushAuth& auth) {
  std::string digest = Sha256Digest(data);
  SKIFF_ASSIGN_OR_RETURN(HttpResult start,
                         Http("POST", base_url + "/v2/" + repo + "/blobs/uploads/", "", "", auth));
  if (start.status != 202 || start.location.empty()) {
    return absl::InternalError(absl::StrCat("start upload: HTTP ", start.status, " ", start.body));
  }
  std::string url = start.location;
  if (url.front() == '/') url = base_url + url;
  url += (url.find('?') == std::string::npos ? "?" : "&") + std::string("digest=") + digest;
  SKIFF_ASSIGN_OR_RETURN(HttpResult put, Http("PUT", url, data, "application/octet-stream", auth));
  if (put.status != 201) {
    return absl::InternalError(absl::StrCat("PUT blob: HTTP ", put.status, " ", put.body));
  }
  return digest;
}

absl::StatusOr<std::string> PushManifest(const std::string& base_url, const std::string& repo,
                                         const std::string& tag, const std::string& media_type,
                                         const std::string& body, const PushAuth& auth) {
  SKIFF_ASSIGN_OR_RETURN(HttpResult put, Http("PUT", base_url + "/v2/" + repo + "/manifests/" + tag,
                                              body, media_type, auth));
  if (put.status != 201) {
    return absl::InternalError(absl::StrCat("PUT manifest: HTTP ", put.status, " ", put.body));
  }
  return Sha256Digest(body);
}

absl::StatusOr<PushedImage> PushImage(const std::string& base_url, const std::string& repo,
                                      const std::string& tag, const std::vector<TestLayer>& layers,
                                      const std::string& config_json, const PushAuth& auth,
                                      bool docker_media_types) {
  const char* manifest_type = docker_media_types
                                  ? "application/vnd.docker.distribution.manifest.v2+json"
                                  : "application/vnd.oci.image.manifest.v1+json";
  const char* config_type = docker_media_types ? "application/vnd.docker.container.image.v1+json"
                                               : "application/vnd.oci.image.config.v1+json";
  PushedImage img;
  std::vector<std::string> diff_ids, descriptors;
  for (const TestLayer& l : layers) {
    SKIFF_ASSIGN_OR_RETURN(std::string d, PushBlob(base_url, repo, l.blob, auth));
    img.layer_digests.push_back(d);
    diff_ids.push_back("\"" + Sha256Digest(l.uncompressed) + "\"");
    descriptors.push_back(absl::StrCat(R"({"mediaType":")", l.media_type, R"(","digest":")", d,
                                       R"(","size":)", l.blob.size(), "}"));
  }
  std::string config = absl::StrCat(R"({"architecture":"amd64","os":"linux","config":)",
                                    config_json, R"(,"rootfs":{"type":"layers","diff_ids":[)",
                                    absl::StrJoin(diff_ids, ","), "]}}");
  SKIFF_ASSIGN_OR_RETURN(img.config_digest, PushBlob(base_url, repo, config, auth));
  img.manifest = absl::StrCat(R"({"schemaVersion":2,"mediaType":")", manifest_type,
                              R"(","config":{"mediaType":")", config_type, R"(","digest":")",
                              img.config_digest, R"(","size":)", config.size(), R"(},"layers":[)",
                              absl::StrJoin(descriptors, ","), "]}");
  SKIFF_ASSIGN_OR_RETURN(img.manifest_digest,
                         PushManifest(base_url, repo, tag, manifest_type, img.manifest, auth));
  return img;
}

}  // namespace skiff::images::testing
