#include "images/registry_client.h"

#include <curl/curl.h>
#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "images/digest.h"
#include "images/hostile_json.h"
#include "images/manifest.h"
#include "sandbox/common/status.h"

namespace skiff::images {
namespace {

constexpr size_t kMaxErrorBody = 64 << 10;
constexpr size_t kMaxTokenBody = 1 << 20;
constexpr char kUserAgent[] = "skiff/0.1";

struct CurlFree {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistFree {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string Base64(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

// host[:port] of an http(s) URL, lower-cased; "" if it is not one.
std::string UrlHost(const std::string& url, std::string* scheme) {
  size_t p = url.find("://");
  if (p == std::string::npos) return "";
  *scheme = absl::AsciiStrToLower(url.substr(0, p));
  std::string rest = url.substr(p + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  if (rest.find('@') != std::string::npos) return "";  // no userinfo in realms
  return absl::AsciiStrToLower(rest);
}

// The registry's {"errors":[{"code":..,"message":..}]}, as "CODE: message; ...".
std::string RegistryErrors(const std::string& body) {
  auto j = ParseHostileJson(body, kMaxErrorBody, "registry error");
  if (!j.ok()) return "";
  auto it = j->find("errors");
  if (it == j->end() || !it->is_array()) return "";
  std::vector<std::string> parts;
  for (const auto& e : *it) {
    if (!e.is_object()) continue;
    std::string code =
        e.contains("code") && e["code"].is_string() ? e["code"].get<std::string>() : "";
    std::string msg =
        e.contains("message") && e["message"].is_string() ? e["message"].get<std::string>() : "";
    parts.push_back(absl::StrCat(code, ": ", msg.substr(0, 200)));
    if (parts.size() >= 4) break;
  }
  return absl::StrJoin(parts, "; ");
}

struct Transfer {
  const std::function<void(uint64_t)>* on_bytes = nullptr;
  ByteSink* sink = nullptr;
  size_t max_body = 0;
  std::string body;
  std::map<std::string, std::string> headers;
  absl::Status sink_status;
  uint64_t received = 0;
  CURL* curl = nullptr;
};

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string line(data, size * n);
  if (absl::StartsWith(line, "HTTP/")) {
    t->headers.clear();  // a new response (after a redirect or 100-continue)
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon != std::string::npos && t->headers.size() < 200) {
    std::string name = absl::AsciiStrToLower(line.substr(0, colon));
    std::string value(absl::StripAsciiWhitespace(line.substr(colon + 1)));
    t->headers[name] = value.substr(0, 8192);
  }
  return size * n;
}

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = size * n;
  long status = 0;
  curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
  if (t->sink != nullptr && status >= 200 && status < 300) {
    t->sink_status = t->sink->Write(std::string_view(data, len));
    if (!t->sink_status.ok()) return 0;
    t->received += len;
    if (t->on_bytes != nullptr && *t->on_bytes) (*t->on_bytes)(t->received);
    return len;
  }
  size_t limit = (t->sink != nullptr) ? kMaxErrorBody : t->max_body;
  if (t->body.size() + len > limit) {
    t->sink_status =
        absl::ResourceExhaustedError(absl::StrCat("response body larger than ", limit, " bytes"));
    return 0;
  }
  t->body.append(data, len);
  return len;
}

bool Retryable(long status) { return status >= 500 || status == 429; }

}  // namespace

std::map<std::string, std::string> ParseAuthChallenge(const std::string& header) {
  std::map<std::string, std::string> out;
  size_t i = 0;
  while (i < header.size() && header[i] == ' ') ++i;
  size_t sp = header.find(' ', i);
  out[""] = absl::AsciiStrToLower(header.substr(i, sp == std::string::npos ? sp : sp - i));
  if (sp == std::string::npos) return out;
  i = sp + 1;
  while (i < header.size()) {
    while (i < header.size() && (header[i] == ' ' || header[i] == ',')) ++i;
    size_t eq = header.find('=', i);
    if (eq == std::string::npos) break;
    std::string key = absl::AsciiStrToLower(absl::StripAsciiWhitespace(header.substr(i, eq - i)));
    i = eq + 1;
    std::string value;
    if (i < header.size() && header[i] == '"') {
      ++i;
      while (i < header.size() && header[i] != '"') {
        if (header[i] == '\\' && i + 1 < header.size()) ++i;
        value.push_back(header[i++]);
      }
      ++i;  // closing quote
    } else {
      size_t end = header.find(',', i);
      value = std::string(absl::StripAsciiWhitespace(
          header.substr(i, end == std::string::npos ? std::string::npos : end - i)));
      i = end == std::string::npos ? header.size() : end;
    }
    out[key] = value;
  }
  return out;
}

RegistryClient::RegistryClient(RegistryOptions options) : options_(std::move(options)) {
  GlobalInit();
}

int RegistryClient::requests_performed() const {
  absl::MutexLock lock(&mu_);
  return requests_;
}

bool RegistryClient::Insecure(const std::string& host_port) const {
  return std::find(options_.insecure_registries.begin(), options_.insecure_registries.end(),
                   host_port) != options_.insecure_registries.end();
}

std::string RegistryClient::BaseUrl(const Reference& ref) const {
  return absl::StrCat(Insecure(ref.registry) ? "http" : "https", "://", ref.ApiHost(), "/v2/",
                      ref.repository);
}

std::string RegistryClient::BasicHeader(const std::string& registry) const {
  auto it = options_.credentials.find(registry);
  if (it == options_.credentials.end()) return "";
  return absl::StrCat("Authorization: Basic ",
                      Base64(absl::StrCat(it->second.username, ":", it->second.password)));
}

absl::StatusOr<RegistryClient::Response> RegistryClient::PerformOnce(const RequestSpec& spec,
                                                                     const std::string& what) {
  {
    absl::MutexLock lock(&mu_);
    ++requests_;
  }
  std::unique_ptr<CURL, CurlFree> curl(curl_easy_init());
  if (!curl) return absl::InternalError(absl::StrCat(what, ": curl_easy_init failed"));
  std::unique_ptr<curl_slist, SlistFree> headers;
  for (const auto& h : spec.headers) {
    curl_slist* l = curl_slist_append(headers.get(), h.c_str());
    if (l == nullptr) return absl::InternalError("curl_slist_append failed");
    headers.release();
    headers.reset(l);
  }
  Transfer t;
  t.curl = curl.get();
  t.sink = spec.sink;
  t.max_body = spec.max_body;
  t.on_bytes = spec.on_bytes;
  std::string scheme;
  UrlHost(spec.url, &scheme);
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, spec.url.c_str());
  if (spec.head) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_USERAGENT, kUserAgent);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  // Never downgrade from https on a redirect.
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, scheme == "https" ? "https" : "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connect_timeout_ms));
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, static_cast<long>(options_.low_speed_time_s));
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!options_.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, options_.ca_file.c_str());
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  CURLcode rc = curl_easy_perform(c);
  if (!t.sink_status.ok()) return t.sink_status;
  if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
      rc == CURLE_SSL_CERTPROBLEM) {
    // Not transient: no retry.
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": GET ", spec.url,
                     ": TLS certificate verification failed: ", curl_easy_strerror(rc)));
  }
  if (rc != CURLE_OK) {
    return absl::UnavailableError(
        absl::StrCat(what, ": GET ", spec.url, ": ", curl_easy_strerror(rc)));
  }
  Response r;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  r.headers = std::move(t.headers);
  r.body = std::move(t.body);
  return r;
}

absl::StatusOr<RegistryClient::Response> RegistryClient::PerformWithRetry(const RequestSpec& spec,
                                                                          const std::string& what) {
  const int attempts = std::max(1, options_.max_attempts);
  int backoff_ms = std::max(0, options_.initial_backoff_ms);
  absl::StatusOr<Response> r;
  for (int attempt = 1; attempt <= attempts; ++attempt) {
    if (spec.sink != nullptr) SKIFF_RETURN_IF_ERROR(spec.sink->Restart());
    r = PerformOnce(spec, what);
    bool retry =
        r.ok() ? Retryable(r->status) : r.status().code() == absl::StatusCode::kUnavailable;
    if (!retry || attempt == attempts) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
    backoff_ms = std::min(backoff_ms * 2, options_.max_backoff_ms);
  }
  if (!r.ok()) return Annotate(r.status(), absl::StrCat("after ", attempts, " attempts"));
  return r;
}

absl::StatusOr<std::string> RegistryClient::FetchToken(
    const Reference& ref, const std::map<std::string, std::string>& challenge,
    const std::string& what) {
  auto realm_it = challenge.find("realm");
  if (realm_it == challenge.end() || realm_it->second.empty()) {
    return absl::PermissionDeniedError(absl::StrCat(what, ": bearer challenge without realm"));
  }
  const std::string& realm = realm_it->second;
  std::string scheme;
  std::string host = UrlHost(realm, &scheme);
  if (host.empty() || (scheme != "https" && !(scheme == "http" && Insecure(host)))) {
    return absl::PermissionDeniedError(
        absl::StrCat(what, ": token realm \"", realm.substr(0, 200),
                     "\" must be https (or http to a registry in the insecure list)"));
  }
  std::unique_ptr<CURL, CurlFree> esc(curl_easy_init());
  auto escape = [&](const std::string& s) {
    char* e = curl_easy_escape(esc.get(), s.c_str(), static_cast<int>(s.size()));
    std::string out = e ? e : "";
    curl_free(e);
    return out;
  };
  std::string url = realm;
  std::vector<std::string> query;
  if (auto it = challenge.find("service"); it != challenge.end()) {
    query.push_back(absl::StrCat("service=", escape(it->second)));
  }
  auto scope_it = challenge.find("scope");
  std::string scope = scope_it != challenge.end()
                          ? scope_it->second
                          : absl::StrCat("repository:", ref.repository, ":pull");
  query.push_back(absl::StrCat("scope=", escape(scope)));
  absl::StrAppend(&url, realm.find('?') == std::string::npos ? "?" : "&",
                  absl::StrJoin(query, "&"));
  RequestSpec spec;
  spec.url = url;
  spec.max_body = kMaxTokenBody;
  if (std::string basic = BasicHeader(ref.registry); !basic.empty()) {
    spec.headers.push_back(basic);
  }
  SKIFF_ASSIGN_OR_RETURN(Response r, PerformWithRetry(spec, what));
  if (r.status == 401 || r.status == 403) {
    return absl::PermissionDeniedError(
        absl::StrCat(what, ": token endpoint ", realm, " refused: HTTP ", r.status));
  }
  if (r.status != 200) {
    return absl::UnavailableError(
        absl::StrCat(what, ": token endpoint ", realm, ": HTTP ", r.status));
  }
  auto j = ParseHostileJson(r.body, kMaxTokenBody, "token response");
  if (!j.ok()) return Annotate(j.status(), what);
  for (const char* key : {"token", "access_token"}) {
    auto it = j->find(key);
    if (it != j->end() && it->is_string() && !it->get<std::string>().empty()) {
      std::string token = it->get<std::string>();
      if (token.find_first_of("\r\n") != std::string::npos) break;
      return token;
    }
  }
  return absl::PermissionDeniedError(absl::StrCat(what, ": token response has no token"));
}

absl::StatusOr<RegistryClient::Response> RegistryClient::Request(const Reference& ref,
                                                                 RequestSpec spec,
                                                                 const std::string& what) {
  const std::vector<std::string> base_headers = spec.headers;
  std::string scope = absl::StrCat("repository:", ref.repository, ":pull");
  std::string token_key = absl::StrCat(ref.registry, "|", scope);
  bool use_basic = false;
  std::string token;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = tokens_.find(token_key); it != tokens_.end()) token = it->second;
    use_basic = basic_registries_.count(ref.registry) > 0;
  }
  absl::StatusOr<Response> r;
  for (int round = 0; round < 2; ++round) {
    spec.headers = base_headers;
    if (!token.empty()) {
      spec.headers.push_back(absl::StrCat("Authorization: Bearer ", token));
    } else if (use_basic) {
      spec.headers.push_back(BasicHeader(ref.registry));
    }
    r = PerformWithRetry(spec, what);
    if (!r.ok()) return r.status();
    if (r->status != 401 || round == 1) break;
    auto challenge = ParseAuthChallenge(r->headers["www-authenticate"]);
    if (challenge[""] == "bearer") {
      SKIFF_ASSIGN_OR_RETURN(token, FetchToken(ref, challenge, what));
      absl::MutexLock lock(&mu_);
      tokens_[token_key] = token;
    } else if (challenge[""] == "basic" && !BasicHeader(ref.registry).empty() && !use_basic) {
      use_basic = true;
      absl::MutexLock lock(&mu_);
      basic_registries_[ref.registry] = true;
    } else {
      break;
    }
  }
  const long status = r->status;
  if (status >= 200 && status < 300) return r;
  std::string detail = RegistryErrors(r->body);
  std::string msg = absl::StrCat(what, spec.head ? ": HEAD " : ": GET ", spec.url, ": HTTP ",
                                 status, detail.empty() ? "" : " ", detail);
  if (status == 404) return absl::NotFoundError(msg);
  if (status == 401 || status == 403) return absl::PermissionDeniedError(msg);
  if (Retryable(status)) return absl::UnavailableError(msg);
  if (status == 400) return absl::InvalidArgumentError(msg);
  return absl::UnknownError(msg);
}

absl::StatusOr<FetchedManifest> RegistryClient::GetManifest(const Reference& ref,
                                                            const std::string& tag_or_digest) {
  std::string what =
      absl::StrCat("manifest ", ref.Name(), absl::StartsWith(tag_or_digest, "sha256:") ? "@" : ":",
                   tag_or_digest);
  RequestSpec spec;
  spec.url = absl::StrCat(BaseUrl(ref), "/manifests/", tag_or_digest);
  spec.max_body = kMaxManifestBytes;
  spec.headers.push_back(absl::StrCat("Accept: ", kOciManifest, ", ", kOciIndex, ", ",
                                      kDockerManifest, ", ", kDockerManifestList));
  SKIFF_ASSIGN_OR_RETURN(Response r, Request(ref, spec, what));
  FetchedManifest m;
  m.body = std::move(r.body);
  m.media_type = r.headers["content-type"];
  m.digest = Sha256Digest(m.body);
  if (absl::StartsWith(tag_or_digest, "sha256:") && m.digest != tag_or_digest) {
    return absl::DataLossError(absl::StrCat(what, ": content hashes to ", m.digest));
  }
  if (const std::string& h = r.headers["docker-content-digest"];
      !h.empty() && absl::StartsWith(h, "sha256:") && h != m.digest) {
    return absl::DataLossError(absl::StrCat(what, ": content hashes to ", m.digest,
                                            " but Docker-Content-Digest says ", h));
  }
  return m;
}

absl::StatusOr<std::string> RegistryClient::HeadManifest(const Reference& ref,
                                                         const std::string& tag) {
  std::string what = absl::StrCat("manifest ", ref.Name(), ":", tag);
  RequestSpec spec;
  spec.head = true;
  spec.url = absl::StrCat(BaseUrl(ref), "/manifests/", tag);
  spec.headers.push_back(absl::StrCat("Accept: ", kOciManifest, ", ", kOciIndex, ", ",
                                      kDockerManifest, ", ", kDockerManifestList));
  SKIFF_ASSIGN_OR_RETURN(Response r, Request(ref, spec, what));
  std::string digest = r.headers["docker-content-digest"];
  if (!ValidateDigest(digest).ok()) return std::string();
  return digest;
}

absl::Status RegistryClient::FetchBlob(const Reference& ref, const std::string& digest,
                                       ByteSink& sink,
                                       const std::function<void(uint64_t)>& on_bytes) {
  SKIFF_RETURN_IF_ERROR(ValidateDigest(digest));
  std::string what = absl::StrCat("blob ", ref.Name(), "@", digest);
  RequestSpec spec;
  spec.url = absl::StrCat(BaseUrl(ref), "/blobs/", digest);
  spec.sink = &sink;
  spec.on_bytes = &on_bytes;
  return Request(ref, spec, what).status();
}

}  // namespace skiff::images
