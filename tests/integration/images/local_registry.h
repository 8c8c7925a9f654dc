#pragma once

// Test fixtures around Debian's docker-registry: a registry process on 127.0.0.1:<free
// port> with storage in a temp dir (optionally with htpasswd basic auth and/or TLS),
// killed and cleaned up by the destructor; plus a minimal OCI pusher over the
// distribution HTTP API (libcurl) and a test CA made with the openssl CLI.

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace skiff::images::testing {

// A temp dir removed (recursively, without following symlinks) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Runs `argv` to completion; its output goes to `log`. Error unless it exits 0.
absl::Status RunCommand(const std::vector<std::string>& argv, const std::string& log);

// Returns a TCP port on 127.0.0.1 that was free a moment ago (nothing listens on it).
int FreePort();

struct TestCa {
  std::string ca_cert;      // PEM file of the CA
  std::string server_cert;  // for IP:127.0.0.1
  std::string server_key;
};
// Generates a CA and a server certificate for 127.0.0.1 with the openssl CLI in `dir`.
absl::StatusOr<TestCa> MakeTestCa(const std::string& dir);

// A bcrypt htpasswd line ("user:$2b$...") made with libxcrypt.
absl::StatusOr<std::string> HtpasswdLine(const std::string& user, const std::string& password);

struct RegistryOptions {
  std::string htpasswd_file;  // enables basic auth
  std::string tls_cert, tls_key;
};

class LocalRegistry {
 public:
  static absl::StatusOr<std::unique_ptr<LocalRegistry>> Start(const RegistryOptions& options = {});
  ~LocalRegistry();

  std::string host_port() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string base_url() const { return (tls_ ? "https://" : "http://") + host_port(); }
  // Where the registry keeps a blob's bytes.
  std::string BlobDataPath(const std::string& digest) const;

 private:
  LocalRegistry() = default;
  std::unique_ptr<TempDir> dir_;
  pid_t pid_ = -1;
  int port_ = 0;
  bool tls_ = false;
};

// Client settings for pushing.
struct PushAuth {
  std::string ca_file;
  std::string username, password;
};

// Uploads a blob (POST + PUT) and returns its digest.
absl::StatusOr<std::string> PushBlob(const std::string& base_url, const std::string& repo,
                                     const std::string& data, const PushAuth& auth = {});
// PUTs a manifest under `tag`; returns its digest.
absl::StatusOr<std::string> PushManifest(const std::string& base_url, const std::string& repo,
                                         const std::string& tag, const std::string& media_type,
                                         const std::string& body, const PushAuth& auth = {});

struct TestLayer {
  std::string uncompressed;  // the tar
  std::string blob;          // as pushed (maybe compressed)
  std::string media_type;
};

struct PushedImage {
  std::string manifest_digest;
  std::string manifest;
  std::string config_digest;
  std::vector<std::string> layer_digests;  // bottom first
};

// Pushes layers, a linux/amd64 config (with `config_json` as its "config" object) and an
// OCI manifest (or, with `docker_media_types`, a Docker v2 manifest) tagged `tag`.
absl::StatusOr<PushedImage> PushImage(const std::string& base_url, const std::string& repo,
                                      const std::string& tag, const std::vector<TestLayer>& layers,
                                      const std::string& config_json = "{}",
                                      const PushAuth& auth = {}, bool docker_media_types = false);

}  // namespace skiff::images::testing
