#pragma once

// A real local OCI registry for tests: Debian's docker-registry on 127.0.0.1 with a free
// port and its storage in a temp dir, plus the project's example images
// (scripts/images/build.sh, see docs/images-examples.md).
//
//   SKIFF_ASSERT_OK_AND_ASSIGN(auto registry, LocalRegistry::Start());
//   SKIFF_ASSERT_OK(registry->PushExampleImages({"hello", "multilayer"}));
//   store->Pull(registry->Reference("hello"), ...);
//
// The registry process dies with the thread that started it (PR_SET_PDEATHSIG), so a
// crashed test leaves no registry behind; the destructor stops it and removes the dir.

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tests/support/shell.h"

namespace skiff::testing {

struct HttpResponse {
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-cased names, last value wins
};

class LocalRegistry {
 public:
  // Starts docker-registry and waits until GET /v2/ answers 200.
  static absl::StatusOr<std::unique_ptr<LocalRegistry>> Start();

  // Stops the registry (SIGTERM, then SIGKILL) and removes its directory.
  ~LocalRegistry();
  LocalRegistry(const LocalRegistry&) = delete;
  LocalRegistry& operator=(const LocalRegistry&) = delete;

  // "127.0.0.1:PORT".
  const std::string& address() const { return address_; }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  // The temp dir: config.yml, registry.log, push.log, data/ (the registry's storage).
  const std::string& dir() const { return dir_; }

  // "127.0.0.1:PORT/skiff/<name>:<tag>", the name the example images are pushed under.
  std::string Reference(const std::string& name, const std::string& tag = "latest") const;

  // Builds (or takes from the cache) and pushes the named example images by running
  // $SKIFF_SOURCE_DIR/scripts/images/build.sh --registry ADDRESS --only NAMES.
  // Errors carry the tail of the script's output.
  absl::Status PushExampleImages(const std::vector<std::string>& names);

  // Pushes the opt-in `testapp` image (skiff/testapp:latest: the static skiff-testapp binary
  // as /skiff-testapp, PORT=8080) built from $SKIFF_BUILD_DIR/tests/payloads/testapp/
  // skiff-testapp (link the test with skiff-testapp as a dependency so it is built).
  // FailedPrecondition if the binary is missing.
  absl::Status PushTestApp();

  // Where the registry stores a blob ("sha256:<hex>"), e.g. to corrupt it in a test.
  std::string BlobPath(const std::string& digest) const;

  // Plain HTTP GET (or HEAD) of http://ADDRESS<path> with extra "Name: value" headers.
  absl::StatusOr<HttpResponse> Get(const std::string& path,
                                   const std::vector<std::string>& headers = {}) const;
  absl::StatusOr<HttpResponse> Head(const std::string& path,
                                    const std::vector<std::string>& headers = {}) const;

  // Stops the registry now (the directory stays until destruction): later requests to
  // address() fail to connect, as with an unreachable registry. Idempotent.
  void Kill();

 private:
  LocalRegistry(std::string dir, int port, pid_t pid);

  std::string dir_;
  int port_ = 0;
  std::string address_;
  pid_t pid_ = -1;
};

// Plain HTTP GET of `url` (no proxy; 2 s connect timeout, 60 s overall). Unavailable if
// the request fails below HTTP (connect, timeout), naming the URL.
absl::StatusOr<HttpResponse> HttpGet(const std::string& url,
                                     const std::vector<std::string>& headers = {});

// True if `pid` exists and has not exited (a zombie, exited but not yet reaped, counts as
// exited).
bool ProcessRunning(pid_t pid);

// SourceDir() is in tests/support/shell.h (included here for the callers that used it).

// Runs argv (argv[0] looked up in PATH) with stdout+stderr going to `log_path`, waits for
// it, and returns OK on exit status 0, else an error naming the command, its status and
// the log's last lines.
absl::Status RunCommand(const std::vector<std::string>& argv, const std::string& log_path);

}  // namespace skiff::testing
