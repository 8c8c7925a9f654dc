#include "images/manifest.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "images/digest.h"
#include "images/hostile_json.h"

namespace skiff::images {
namespace {

using nlohmann::json;

absl::StatusOr<json> ParseJson(const std::string& body, size_t max, const char* what) {
  return ParseHostileJson(body, max, what);
}

absl::Status FieldError(const char* what, const std::string& field, const char* want) {
  return absl::InvalidArgumentError(absl::StrCat(what, ": field ", field, ": ", want));
}

// Reads an optional string field.
absl::StatusOr<std::string> OptString(const json& j, const char* key, const char* what,
                                      const std::string& path) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::string();
  if (!it->is_string()) return FieldError(what, absl::StrCat(path, key), "want a string");
  return it->get<std::string>();
}

absl::StatusOr<std::vector<std::string>> OptStringArray(const json& j, const char* key,
                                                        const char* what, const std::string& path) {
  std::vector<std::string> out;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return out;
  if (!it->is_array()) return FieldError(what, absl::StrCat(path, key), "want an array");
  for (size_t i = 0; i < it->size(); ++i) {
    const json& v = (*it)[i];
    if (!v.is_string()) {
      return FieldError(what, absl::StrCat(path, key, "[", i, "]"), "want a string");
    }
    out.push_back(v.get<std::string>());
  }
  return out;
}

absl::StatusOr<Descriptor> ParseDescriptor(const json& j, const char* what,
                                           const std::string& path) {
  if (!j.is_object()) return FieldError(what, path, "want an object");
  Descriptor d;
  auto mt = OptString(j, "mediaType", what, path + ".");
  if (!mt.ok()) return mt.status();
  d.media_type = *mt;
  auto dg = OptString(j, "digest", what, path + ".");
  if (!dg.ok()) return dg.status();
  d.digest = *dg;
  if (absl::Status s = ValidateDigest(d.digest); !s.ok()) {
    return FieldError(what, path + ".digest", std::string(s.message()).c_str());
  }
  auto sz = j.find("size");
  if (sz == j.end() || !sz->is_number_integer() || sz->get<int64_t>() < 0) {
    return FieldError(what, path + ".size", "want a non-negative integer");
  }
  d.size = sz->get<int64_t>();
  if (auto p = j.find("platform"); p != j.end() && !p->is_null()) {
    if (!p->is_object()) return FieldError(what, path + ".platform", "want an object");
    auto os = OptString(*p, "os", what, path + ".platform.");
    if (!os.ok()) return os.status();
    auto arch = OptString(*p, "architecture", what, path + ".platform.");
    if (!arch.ok()) return arch.status();
    auto variant = OptString(*p, "variant", what, path + ".platform.");
    if (!variant.ok()) return variant.status();
    d.os = *os;
    d.architecture = *arch;
    d.variant = *variant;
  }
  return d;
}

absl::Status CheckSchemaVersion(const json& j, const char* what) {
  auto it = j.find("schemaVersion");
  if (it == j.end() || !it->is_number_integer() || it->get<int64_t>() != 2) {
    return FieldError(what, "schemaVersion", "want 2 (schema 1 manifests are not supported)");
  }
  return absl::OkStatus();
}

}  // namespace

bool IsIndexMediaType(const std::string& media_type) {
  return media_type == kOciIndex || media_type == kDockerManifestList;
}

absl::StatusOr<std::string> DetectMediaType(const std::string& body,
                                            const std::string& content_type) {
  std::string ct = content_type.substr(0, content_type.find(';'));
  while (!ct.empty() && ct.back() == ' ') ct.pop_back();
  if (ct == kOciManifest || ct == kOciIndex || ct == kDockerManifest || ct == kDockerManifestList) {
    return ct;
  }
  auto j = ParseJson(body, kMaxManifestBytes, "manifest");
  if (!j.ok()) return j.status();
  auto mt = OptString(*j, "mediaType", "manifest", "");
  if (!mt.ok()) return mt.status();
  if (*mt == kOciManifest || *mt == kOciIndex || *mt == kDockerManifest ||
      *mt == kDockerManifestList) {
    return *mt;
  }
  if (mt->empty()) {
    // OCI allows an absent mediaType: an index has "manifests", a manifest has "layers".
    if (j->contains("manifests")) return std::string(kOciIndex);
    if (j->contains("layers")) return std::string(kOciManifest);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("manifest: unsupported media type \"", mt->empty() ? ct : *mt, "\""));
}

absl::StatusOr<Manifest> ParseManifest(const std::string& body, const std::string& media_type) {
  constexpr const char* kWhat = "manifest";
  auto j = ParseJson(body, kMaxManifestBytes, kWhat);
  if (!j.ok()) return j.status();
  if (absl::Status s = CheckSchemaVersion(*j, kWhat); !s.ok()) return s;
  Manifest m;
  m.media_type = media_type;
  auto mt = OptString(*j, "mediaType", kWhat, "");
  if (!mt.ok()) return mt.status();
  if (!mt->empty() && *mt != media_type) {
    return FieldError(kWhat, "mediaType",
                      absl::StrCat("\"", *mt, "\" does not match \"", media_type, "\"").c_str());
  }
  auto cfg = j->find("config");
  if (cfg == j->end()) return FieldError(kWhat, "config", "missing");
  auto config = ParseDescriptor(*cfg, kWhat, "config");
  if (!config.ok()) return config.status();
  m.config = *config;
  if (m.config.media_type != kOciConfig && m.config.media_type != kDockerConfig) {
    return FieldError(kWhat, "config.mediaType",
                      absl::StrCat("unsupported \"", m.config.media_type, "\"").c_str());
  }
  if (m.config.size > static_cast<int64_t>(kMaxConfigBytes)) {
    return FieldError(kWhat, "config.size", "too large");
  }
  auto layers = j->find("layers");
  if (layers == j->end() || !layers->is_array()) {
    return FieldError(kWhat, "layers", "want an array");
  }
  if (layers->size() > kMaxLayers) return FieldError(kWhat, "layers", "too many layers");
  for (size_t i = 0; i < layers->size(); ++i) {
    std::string path = absl::StrCat("layers[", i, "]");
    auto d = ParseDescriptor((*layers)[i], kWhat, path);
    if (!d.ok()) return d.status();
    if (auto c = LayerCompressionOf(d->media_type); !c.ok()) {
      return FieldError(kWhat, path + ".mediaType", std::string(c.status().message()).c_str());
    }
    m.layers.push_back(*d);
  }
  return m;
}

absl::StatusOr<Index> ParseIndex(const std::string& body, const std::string& media_type) {
  constexpr const char* kWhat = "image index";
  auto j = ParseJson(body, kMaxManifestBytes, kWhat);
  if (!j.ok()) return j.status();
  if (absl::Status s = CheckSchemaVersion(*j, kWhat); !s.ok()) return s;
  Index index;
  index.media_type = media_type;
  auto ms = j->find("manifests");
  if (ms == j->end() || !ms->is_array()) return FieldError(kWhat, "manifests", "want an array");
  if (ms->size() > 1024) return FieldError(kWhat, "manifests", "too many entries");
  for (size_t i = 0; i < ms->size(); ++i) {
    auto d = ParseDescriptor((*ms)[i], kWhat, absl::StrCat("manifests[", i, "]"));
    if (!d.ok()) return d.status();
    index.manifests.push_back(*d);
  }
  return index;
}

absl::StatusOr<Descriptor> SelectPlatform(const Index& index, const std::string& os,
                                          const std::string& architecture) {
  std::vector<std::string> seen;
  for (const Descriptor& d : index.manifests) {
    if (d.os == os && d.architecture == architecture &&
        (d.media_type == kOciManifest || d.media_type == kDockerManifest)) {
      return d;
    }
    seen.push_back(absl::StrCat(d.os, "/", d.architecture));
  }
  return absl::NotFoundError(absl::StrCat("image index: no ", os, "/", architecture,
                                          " manifest (has: ", absl::StrJoin(seen, ", "), ")"));
}

absl::StatusOr<ParsedConfig> ParseImageConfig(const std::string& body) {
  constexpr const char* kWhat = "image config";
  auto j = ParseJson(body, kMaxConfigBytes, kWhat);
  if (!j.ok()) return j.status();
  ParsedConfig out;
  auto os = OptString(*j, "os", kWhat, "");
  if (!os.ok()) return os.status();
  auto arch = OptString(*j, "architecture", kWhat, "");
  if (!arch.ok()) return arch.status();
  out.os = *os;
  out.architecture = *arch;
  if (auto c = j->find("config"); c != j->end() && !c->is_null()) {
    if (!c->is_object()) return FieldError(kWhat, "config", "want an object");
    auto ep = OptStringArray(*c, "Entrypoint", kWhat, "config.");
    if (!ep.ok()) return ep.status();
    auto cmd = OptStringArray(*c, "Cmd", kWhat, "config.");
    if (!cmd.ok()) return cmd.status();
    auto env = OptStringArray(*c, "Env", kWhat, "config.");
    if (!env.ok()) return env.status();
    auto wd = OptString(*c, "WorkingDir", kWhat, "config.");
    if (!wd.ok()) return wd.status();
    auto user = OptString(*c, "User", kWhat, "config.");
    if (!user.ok()) return user.status();
    for (size_t i = 0; i < env->size(); ++i) {
      const std::string& kv = (*env)[i];
      if (kv.find('=') == std::string::npos || kv.front() == '=' ||
          kv.find('\0') != std::string::npos) {
        return FieldError(kWhat, absl::StrCat("config.Env[", i, "]"), "want KEY=VALUE");
      }
    }
    out.config.entrypoint = *ep;
    out.config.cmd = *cmd;
    out.config.env = *env;
    out.config.working_dir = *wd;
    out.config.user = *user;
  }
  auto rootfs = j->find("rootfs");
  if (rootfs == j->end() || !rootfs->is_object()) {
    return FieldError(kWhat, "rootfs", "want an object");
  }
  auto type = OptString(*rootfs, "type", kWhat, "rootfs.");
  if (!type.ok()) return type.status();
  if (*type != "layers") return FieldError(kWhat, "rootfs.type", "want \"layers\"");
  auto diff_ids = OptStringArray(*rootfs, "diff_ids", kWhat, "rootfs.");
  if (!diff_ids.ok()) return diff_ids.status();
  if (diff_ids->size() > kMaxLayers) return FieldError(kWhat, "rootfs.diff_ids", "too many");
  for (size_t i = 0; i < diff_ids->size(); ++i) {
    if (!ValidateDigest((*diff_ids)[i]).ok()) {
      return FieldError(kWhat, absl::StrCat("rootfs.diff_ids[", i, "]"),
                        "want sha256:<64 hex digits>");
    }
  }
  out.diff_ids = *diff_ids;
  return out;
}

absl::StatusOr<LayerCompression> LayerCompressionOf(const std::string& media_type) {
  static const std::pair<const char*, LayerCompression> kTypes[] = {
      {"application/vnd.oci.image.layer.v1.tar", LayerCompression::kNone},
      {"application/vnd.oci.image.layer.v1.tar+gzip", LayerCompression::kGzip},
      {"application/vnd.oci.image.layer.v1.tar+zstd", LayerCompression::kZstd},
      {"application/vnd.oci.image.layer.nondistributable.v1.tar", LayerCompression::kNone},
      {"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", LayerCompression::kGzip},
      {"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", LayerCompression::kZstd},
      {"application/vnd.docker.image.rootfs.diff.tar", LayerCompression::kNone},
      {"application/vnd.docker.image.rootfs.diff.tar.gzip", LayerCompression::kGzip},
      {"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", LayerCompression::kGzip},
  };
  for (const auto& [name, c] : kTypes) {
    if (media_type == name) return c;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported layer media type \"", media_type.substr(0, 200), "\""));
}

}  // namespace skiff::images
