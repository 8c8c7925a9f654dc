#include "agent/ingress/service_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/ingress/service_validation.h"
#include "agent/instances/state_files.h"
#include "sandbox/common/status.h"
#include "sandbox/common/unique_fd.h"

namespace skiff::ingress {
namespace {

constexpr char kSuffix[] = ".pb";

// Makes the directory entry of a rename or unlink durable.
absl::Status SyncDir(const std::string& dir) {
  UniqueFd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, "open(", dir, ")");
  if (fsync(fd.get()) != 0) return ErrnoStatus(errno, "fsync(", dir, ")");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ServiceStore> ServiceStore::Open(std::string dir) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoStatus(errno, "mkdir(", dir, ")");
  }
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) return ErrnoStatus(errno, "stat(", dir, ")");
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(dir, ": not a directory"));
  }
  return ServiceStore(std::move(dir));
}

std::string ServiceStore::PathOf(const std::string& name) const {
  return absl::StrCat(dir_, "/", name, kSuffix);
}

absl::StatusOr<ServiceStore::Loaded> ServiceStore::Load() const {
  std::vector<std::string> names;
  {
    UniqueFd fd(open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd) return ErrnoStatus(errno, "open(", dir_, ")");
    DIR* d = fdopendir(fd.get());
    if (d == nullptr) return ErrnoStatus(errno, "fdopendir(", dir_, ")");
    fd.Release();  // owned by the DIR now; closedir() closes it
    while (struct dirent* e = readdir(d)) {
      const std::string file = e->d_name;
      if (file.size() > 3 && absl::EndsWith(file, kSuffix)) {
        names.push_back(file.substr(0, file.size() - 3));
      }
    }
    closedir(d);
  }
  std::sort(names.begin(), names.end());
  Loaded out;
  for (const std::string& name : names) {
    const std::string path = PathOf(name);
    v1::Service service;
    if (absl::Status st = agent::ReadProtoFile(path, &service); !st.ok()) {
      out.skipped.push_back(st);
      continue;
    }
    if (service.name() != name) {
      out.skipped.push_back(absl::DataLossError(absl::StrCat(
          path, ": holds service \"", service.name().substr(0, 64), "\", not \"", name, "\"")));
      continue;
    }
    absl::StatusOr<v1::Service> normal = NormalizeService(std::move(service));
    if (!normal.ok()) {
      out.skipped.push_back(Annotate(normal.status(), path));
      continue;
    }
    out.services.push_back(std::move(*normal));
  }
  return out;
}

absl::Status ServiceStore::Save(const v1::Service& service) const {
  SKIFF_RETURN_IF_ERROR(ValidateServiceName(service.name()));
  SKIFF_RETURN_IF_ERROR(agent::WriteProtoFile(PathOf(service.name()), service));
  return SyncDir(dir_);
}

absl::Status ServiceStore::Remove(const std::string& name) const {
  SKIFF_RETURN_IF_ERROR(ValidateServiceName(name));
  const std::string path = PathOf(name);
  if (unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoStatus(errno, "unlink(", path, ")");
  }
  return SyncDir(dir_);
}

}  // namespace skiff::ingress
