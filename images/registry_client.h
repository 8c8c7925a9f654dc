#pragma once

// OCI distribution client over libcurl: manifests (OCI/Docker, single and index) and blobs
// streamed into a ByteSink. Auth: anonymous, HTTP basic, and the bearer-token challenge
// flow (401 + WWW-Authenticate: Bearer realm=,service=,scope= → GET token, with basic
// credentials if configured → retry with Authorization: Bearer). TLS with the system
// store or a configured CA file; plain HTTP only for registries in the insecure list.
// Connection errors, 5xx and 429 are retried with exponential backoff; 4xx are not.
// Errors: NotFound (404, MANIFEST_UNKNOWN, NAME_UNKNOWN, BLOB_UNKNOWN), Unavailable
// (unreachable or 5xx after retries), PermissionDenied (401/403 after auth), DataLoss
// (content does not match its digest) — each naming the reference and URL.

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "images/byte_sink.h"
#include "images/image_store.h"
#include "images/reference.h"

namespace skiff::images {

struct RegistryOptions {
  std::vector<std::string> insecure_registries;            // host[:port] reached over http://
  std::string ca_file;                                     // "" = system store
  std::map<std::string, RegistryCredentials> credentials;  // by host[:port]
  int max_attempts = 4;
  int initial_backoff_ms = 100;
  int max_backoff_ms = 5000;
  int connect_timeout_ms = 10000;
  int low_speed_time_s = 30;  // abort a transfer below 1 KiB/s for this long
};

struct FetchedManifest {
  std::string body;
  std::string media_type;  // Content-Type as sent by the registry (may be empty)
  std::string digest;      // sha256 of body, verified against the request / header
};

class RegistryClient {
 public:
  explicit RegistryClient(RegistryOptions options);

  // GET /v2/<repo>/manifests/<tag-or-digest> with every supported Accept type.
  absl::StatusOr<FetchedManifest> GetManifest(const Reference& ref,
                                              const std::string& tag_or_digest);
  // HEAD /v2/<repo>/manifests/<tag>: the digest the registry reports in
  // Docker-Content-Digest ("" if it sends none). Cheap check whether a tag moved.
  absl::StatusOr<std::string> HeadManifest(const Reference& ref, const std::string& tag);
  // GET /v2/<repo>/blobs/<digest> into `sink` (restarted on each retry). `on_bytes` gets
  // the bytes received so far in this attempt.
  absl::Status FetchBlob(const Reference& ref, const std::string& digest, ByteSink& sink,
                         const std::function<void(uint64_t)>& on_bytes = nullptr);

  // The number of HTTP requests performed (tests use it to check retries).
  int requests_performed() const;

 private:
  struct Response {
    long status = 0;
    std::map<std::string, std::string> headers;  // lower-case names, final response only
    std::string body;                            // non-2xx bodies and sink-less requests
  };
  struct RequestSpec {
    std::string url;
    std::vector<std::string> headers;
    bool head = false;
    ByteSink* sink = nullptr;  // 2xx bodies go here when set
    size_t max_body = 0;       // limit for `body`
    const std::function<void(uint64_t)>* on_bytes = nullptr;
  };

  bool Insecure(const std::string& host_port) const;
  std::string BaseUrl(const Reference& ref) const;
  // One HTTP exchange; transport failures → Unavailable.
  absl::StatusOr<Response> PerformOnce(const RequestSpec& spec, const std::string& what);
  // PerformOnce with retries on transport errors, 5xx and 429.
  absl::StatusOr<Response> PerformWithRetry(const RequestSpec& spec, const std::string& what);
  // PerformWithRetry plus the auth challenge flow; maps final HTTP errors to Status.
  absl::StatusOr<Response> Request(const Reference& ref, RequestSpec spec, const std::string& what);
  absl::StatusOr<std::string> FetchToken(const Reference& ref,
                                         const std::map<std::string, std::string>& challenge,
                                         const std::string& what);
  std::string BasicHeader(const std::string& registry) const;

  const RegistryOptions options_;
  mutable absl::Mutex mu_;
  // Bearer tokens by "registry|scope"; registries that asked for basic auth.
  std::map<std::string, std::string> tokens_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, bool> basic_registries_ ABSL_GUARDED_BY(mu_);
  int requests_ ABSL_GUARDED_BY(mu_) = 0;
};

// Parses `Scheme k="v",k2=v2`; keys lower-cased, the scheme under key "" (lower-cased).
std::map<std::string, std::string> ParseAuthChallenge(const std::string& header);

}  // namespace skiff::images
