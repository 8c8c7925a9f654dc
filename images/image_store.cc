#include "images/image_store.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <ctime>
#include <optional>
#include <set>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "images/content_store.h"
#include "images/digest.h"
#include "images/fs_ops.h"
#include "images/hostile_json.h"
#include "images/layer_unpack.h"
#include "images/manifest.h"
#include "images/reference.h"
#include "images/registry_client.h"
#include "sandbox/common/status.h"

namespace skiff::images {
namespace {

using nlohmann::json;

constexpr size_t kMaxRefsJson = 64 << 20;

// What refs.json records per image (by manifest digest).
struct Record {
  std::string manifest_digest;
  std::vector<std::string> references;
  ImageConfig config;
  std::vector<std::string> layers;  // layer blob digests, manifest order (bottom first)
  std::vector<std::string> blobs;   // every blob: index, manifest, config, layers
  uint64_t size_bytes = 0;
  int64_t pulled_unix_s = 0;
};

json ToJson(const Record& r) {
  return json{{"digest", r.manifest_digest},
              {"references", r.references},
              {"layers", r.layers},
              {"blobs", r.blobs},
              {"size", r.size_bytes},
              {"pulled", r.pulled_unix_s},
              {"config",
               {{"entrypoint", r.config.entrypoint},
                {"cmd", r.config.cmd},
                {"env", r.config.env},
                {"working_dir", r.config.working_dir},
                {"user", r.config.user}}}};
}

absl::StatusOr<Record> FromJson(const json& j) {
  try {
    Record r;
    r.manifest_digest = j.at("digest").get<std::string>();
    r.references = j.at("references").get<std::vector<std::string>>();
    r.layers = j.at("layers").get<std::vector<std::string>>();
    r.blobs = j.at("blobs").get<std::vector<std::string>>();
    r.size_bytes = j.at("size").get<uint64_t>();
    r.pulled_unix_s = j.at("pulled").get<int64_t>();
    const json& c = j.at("config");
    r.config.entrypoint = c.at("entrypoint").get<std::vector<std::string>>();
    r.config.cmd = c.at("cmd").get<std::vector<std::string>>();
    r.config.env = c.at("env").get<std::vector<std::string>>();
    r.config.working_dir = c.at("working_dir").get<std::string>();
    r.config.user = c.at("user").get<std::string>();
    SKIFF_RETURN_IF_ERROR(ValidateDigest(r.manifest_digest));
    for (const auto& d : r.layers) SKIFF_RETURN_IF_ERROR(ValidateDigest(d));
    for (const auto& d : r.blobs) SKIFF_RETURN_IF_ERROR(ValidateDigest(d));
    return r;
  } catch (const json::exception& e) {
    return absl::DataLossError(absl::StrCat("refs.json: bad image record: ", e.what()));
  }
}

struct InFlight {
  bool done = false;
  absl::StatusOr<std::string> result;
};

class ImageStoreImpl : public ImageStore {
 public:
  ImageStoreImpl(const StoreOptions& options, std::unique_ptr<ContentStore> blobs)
      : options_(options),
        blobs_(std::move(blobs)),
        registry_(RegistryOptions{.insecure_registries = options.insecure_registries,
                                  .ca_file = options.ca_file,
                                  .credentials = options.credentials,
                                  .max_attempts = options.max_attempts,
                                  .initial_backoff_ms = options.initial_backoff_ms}),
        layers_dir_(absl::StrCat(options.root, "/layers")),
        refs_path_(absl::StrCat(options.root, "/refs.json")) {}

  absl::Status Load() {
    SKIFF_RETURN_IF_ERROR(MakeDirs(layers_dir_));
    // Half-unpacked layers of a previous process are garbage.
    if (DIR* d = opendir(layers_dir_.c_str()); d != nullptr) {
      std::vector<std::string> stale;
      while (struct dirent* e = readdir(d)) {
        if (std::string(e->d_name).find(".tmp-") != std::string::npos) {
          stale.push_back(e->d_name);
        }
      }
      closedir(d);
      for (const auto& s : stale) RemoveTree(absl::StrCat(layers_dir_, "/", s)).IgnoreError();
    }
    absl::StatusOr<std::string> text = ReadFileLimited(refs_path_, kMaxRefsJson);
    if (absl::IsNotFound(text.status())) return absl::OkStatus();  // a new store
    if (!text.ok()) return text.status();
    auto j = ParseHostileJson(*text, kMaxRefsJson, "refs.json");
    if (!j.ok()) return absl::DataLossError(j.status().message());
    auto images = j->find("images");
    if (images == j->end() || !images->is_array()) {
      return absl::DataLossError(absl::StrCat(refs_path_, ": no \"images\" array"));
    }
    absl::MutexLock lock(&mu_);
    for (const json& ij : *images) {
      auto r = FromJson(ij);
      if (!r.ok()) return Annotate(r.status(), refs_path_);
      for (const auto& ref : r->references) refs_[ref] = r->manifest_digest;
      images_[r->manifest_digest] = std::move(*r);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<Image> Pull(const std::string& reference,
                             const std::function<void(const PullProgress&)>& progress) override {
    SKIFF_ASSIGN_OR_RETURN(Reference ref, ParseReference(reference));
    Record rec;
    absl::StatusOr<Image> image = PullParsed(ref, progress, rec);
    Pin(rec.blobs, -1);
    if (!image.ok()) {
      // Leave nothing behind that no image uses (a failed pull changes nothing).
      absl::MutexLock lock(&mu_);
      if (!images_.count(rec.manifest_digest)) {
        DropUnreferencedLocked(rec.blobs, rec.layers).IgnoreError();
      }
      return Annotate(image.status(), absl::StrCat("pull ", ref.String()));
    }
    return image;
  }

  absl::StatusOr<Image> Get(const std::string& reference_or_digest) override {
    absl::MutexLock lock(&mu_);
    SKIFF_ASSIGN_OR_RETURN(const Record* r, FindLocked(reference_or_digest));
    return ToImage(*r);
  }

  std::vector<Image> List() override {
    absl::MutexLock lock(&mu_);
    std::vector<Image> out;
    for (const auto& [digest, r] : images_) out.push_back(ToImage(r));
    return out;
  }

  absl::Status Remove(const std::string& reference_or_digest) override {
    absl::MutexLock lock(&mu_);
    SKIFF_ASSIGN_OR_RETURN(const Record* found, FindLocked(reference_or_digest));
    const std::string digest = found->manifest_digest;
    if (auto u = users_.find(digest); u != users_.end() && u->second > 0) {
      return absl::FailedPreconditionError(absl::StrCat("remove image ", reference_or_digest,
                                                        ": in use by ", u->second, " instance(s)"));
    }
    Record& r = images_[digest];
    if (absl::StartsWith(reference_or_digest, kSha256Prefix)) {
      for (const auto& ref : r.references) refs_.erase(ref);
      r.references.clear();
    } else {
      SKIFF_ASSIGN_OR_RETURN(Reference ref, ParseReference(reference_or_digest));
      refs_.erase(ref.String());
      r.references.erase(std::remove(r.references.begin(), r.references.end(), ref.String()),
                         r.references.end());
    }
    if (r.references.empty()) {
      Record gone = std::move(r);
      images_.erase(digest);
      SKIFF_RETURN_IF_ERROR(DropUnreferencedLocked(gone.blobs, gone.layers));
    }
    return SaveLocked();
  }

  void AddUser(const std::string& manifest_digest) override {
    absl::MutexLock lock(&mu_);
    ++users_[manifest_digest];
  }

  void RemoveUser(const std::string& manifest_digest) override {
    absl::MutexLock lock(&mu_);
    if (auto it = users_.find(manifest_digest); it != users_.end() && --it->second <= 0) {
      users_.erase(it);
    }
  }

 private:
  Image ToImage(const Record& r) const {
    Image img;
    img.manifest_digest = r.manifest_digest;
    img.references = r.references;
    img.config = r.config;
    for (auto it = r.layers.rbegin(); it != r.layers.rend(); ++it) {
      img.layer_dirs.push_back(absl::StrCat(layers_dir_, "/", DigestHex(*it)));
    }
    img.size_bytes = r.size_bytes;
    img.pulled_unix_s = r.pulled_unix_s;
    return img;
  }

  absl::StatusOr<const Record*> FindLocked(const std::string& key)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::string digest;
    if (absl::StartsWith(key, kSha256Prefix)) {
      SKIFF_RETURN_IF_ERROR(ValidateDigest(key));
      digest = key;
    } else {
      SKIFF_ASSIGN_OR_RETURN(Reference ref, ParseReference(key));
      auto it = refs_.find(ref.String());
      if (it == refs_.end()) {
        return absl::NotFoundError(absl::StrCat("image ", ref.String(), ": not pulled"));
      }
      digest = it->second;
    }
    auto it = images_.find(digest);
    if (it == images_.end())
      return absl::NotFoundError(absl::StrCat("image ", key, ": not pulled"));
    return &it->second;
  }

  absl::Status SaveLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    json images = json::array();
    for (const auto& [d, r] : images_) images.push_back(ToJson(r));
    json doc{{"version", 1}, {"images", images}};
    return WriteFileAtomic(refs_path_, doc.dump(1));
  }

  // Deletes those of `blobs` / `layers` that no recorded image uses and no pull under way
  // has pinned.
  absl::Status DropUnreferencedLocked(const std::vector<std::string>& blobs,
                                      const std::vector<std::string>& layers)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::set<std::string> kept_blobs, kept_layers;
    for (const auto& [d, other] : images_) {
      kept_blobs.insert(other.blobs.begin(), other.blobs.end());
      kept_layers.insert(other.layers.begin(), other.layers.end());
    }
    for (const auto& [d, n] : pinned_) {
      kept_blobs.insert(d);
      kept_layers.insert(d);
    }
    for (const auto& b : blobs) {
      if (!kept_blobs.count(b)) SKIFF_RETURN_IF_ERROR(blobs_->Remove(b));
    }
    for (const auto& l : layers) {
      if (!kept_layers.count(l)) {
        SKIFF_RETURN_IF_ERROR(RemoveTree(absl::StrCat(layers_dir_, "/", DigestHex(l))));
      }
    }
    return absl::OkStatus();
  }

  // Records `digest` as part of the pull and pins it against concurrent removal.
  void Track(Record& rec, const std::string& digest) {
    if (std::find(rec.blobs.begin(), rec.blobs.end(), digest) != rec.blobs.end()) return;
    rec.blobs.push_back(digest);
    absl::MutexLock lock(&mu_);
    ++pinned_[digest];
  }

  void Pin(const std::vector<std::string>& digests, int delta) {
    absl::MutexLock lock(&mu_);
    for (const auto& d : digests) {
      if ((pinned_[d] += delta) <= 0) pinned_.erase(d);
    }
  }

  // Fetches a manifest and stores it as a blob.
  absl::StatusOr<FetchedManifest> FetchManifest(const Reference& ref, const std::string& what,
                                                Record& rec) {
    SKIFF_ASSIGN_OR_RETURN(FetchedManifest m, registry_.GetManifest(ref, what));
    Track(rec, m.digest);
    SKIFF_RETURN_IF_ERROR(blobs_->Put(m.digest, m.body));
    return m;
  }

  absl::StatusOr<std::string> EnsureBlob(const Reference& ref, const Descriptor& d,
                                         const std::function<void(uint64_t)>& on_bytes) {
    return blobs_->Ensure(d.digest, d.size, [&](ByteSink& sink) {
      return registry_.FetchBlob(ref, d.digest, sink, on_bytes);
    });
  }

  // One unpack per layer at a time; concurrent callers wait for it.
  absl::StatusOr<std::string> UnpackOnce(const std::string& blob_path,
                                         const std::string& layer_digest) {
    std::shared_ptr<InFlight> flight;
    {
      absl::MutexLock lock(&mu_);
      auto it = unpacking_.find(layer_digest);
      if (it != unpacking_.end()) {
        flight = it->second;
        mu_.Await(absl::Condition(
            +[](InFlight* f) { return f->done; }, flight.get()));
        return flight->result;
      }
      flight = std::make_shared<InFlight>();
      unpacking_[layer_digest] = flight;
    }
    absl::StatusOr<std::string> dir = UnpackLayer(blob_path, layer_digest, layers_dir_);
    absl::MutexLock lock(&mu_);
    flight->result = dir;
    flight->done = true;
    unpacking_.erase(layer_digest);
    return dir;
  }

  bool LayerUnpacked(const std::string& digest) const {
    struct stat st;
    std::string dir = absl::StrCat(layers_dir_, "/", DigestHex(digest));
    return lstat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  }

  // Fills `rec` as it goes; every blob in rec.blobs is pinned (the caller unpins).
  absl::StatusOr<Image> PullParsed(const Reference& ref,
                                   const std::function<void(const PullProgress&)>& progress,
                                   Record& rec) {
    PullProgress p;
    auto report = [&](const char* phase) {
      p.phase = phase;
      if (progress) progress(p);
    };
    report("resolving");
    // A digest reference already present needs no registry.
    // The progress callback is never called with mu_ held (it may call back into the store).
    auto cached = [&](const Image& img) {
      p.manifest_digest = img.manifest_digest;
      p.layers_total = p.layers_done = static_cast<uint32_t>(img.layer_dirs.size());
      p.total_bytes = p.done_bytes = img.size_bytes;
      report("done");
      return img;
    };
    if (!ref.digest.empty()) {
      std::optional<Image> found;
      {
        absl::MutexLock lock(&mu_);
        if (auto it = images_.find(ref.digest); it != images_.end()) {
          bool complete = std::all_of(it->second.layers.begin(), it->second.layers.end(),
                                      [&](const std::string& l) { return LayerUnpacked(l); });
          if (complete) {
            SKIFF_RETURN_IF_ERROR(AddReferenceLocked(it->second, ref));
            found = ToImage(it->second);
          }
        }
      }
      if (found) return cached(*found);
    }
    // A tag already pulled: a HEAD tells whether it still points at the same image.
    if (ref.digest.empty()) {
      std::string known;
      {
        absl::MutexLock lock(&mu_);
        if (auto it = refs_.find(ref.String()); it != refs_.end()) known = it->second;
      }
      if (!known.empty()) {
        SKIFF_ASSIGN_OR_RETURN(std::string current, registry_.HeadManifest(ref, ref.tag));
        std::optional<Image> found;
        {
          absl::MutexLock lock(&mu_);
          auto it = images_.find(known);
          if (current == known && it != images_.end() &&
              std::all_of(it->second.layers.begin(), it->second.layers.end(),
                          [&](const std::string& l) { return LayerUnpacked(l); })) {
            it->second.pulled_unix_s = static_cast<int64_t>(time(nullptr));
            SKIFF_RETURN_IF_ERROR(AddReferenceLocked(it->second, ref));
            found = ToImage(it->second);
          }
        }
        if (found) return cached(*found);
      }
    }
    SKIFF_ASSIGN_OR_RETURN(FetchedManifest top, FetchManifest(ref, ref.TagOrDigest(), rec));
    SKIFF_ASSIGN_OR_RETURN(std::string media, DetectMediaType(top.body, top.media_type));
    FetchedManifest m = std::move(top);
    if (IsIndexMediaType(media)) {
      SKIFF_ASSIGN_OR_RETURN(Index index, ParseIndex(m.body, media));
      SKIFF_ASSIGN_OR_RETURN(Descriptor d, SelectPlatform(index));
      SKIFF_ASSIGN_OR_RETURN(m, FetchManifest(ref, d.digest, rec));
      if (static_cast<int64_t>(m.body.size()) != d.size) {
        return absl::DataLossError(absl::StrCat("manifest ", d.digest, ": ", m.body.size(),
                                                " bytes, index says ", d.size));
      }
      media = d.media_type;
    }
    rec.manifest_digest = m.digest;
    p.manifest_digest = m.digest;
    SKIFF_ASSIGN_OR_RETURN(Manifest manifest, ParseManifest(m.body, media));
    Track(rec, manifest.config.digest);
    SKIFF_RETURN_IF_ERROR(EnsureBlob(ref, manifest.config, nullptr).status());
    SKIFF_ASSIGN_OR_RETURN(std::string config_text,
                           blobs_->Read(manifest.config.digest, kMaxConfigBytes));
    SKIFF_ASSIGN_OR_RETURN(ParsedConfig config, ParseImageConfig(config_text));
    if ((!config.os.empty() && config.os != "linux") ||
        (!config.architecture.empty() && config.architecture != "amd64")) {
      return absl::InvalidArgumentError(absl::StrCat("image config: platform ", config.os, "/",
                                                     config.architecture, " is not linux/amd64"));
    }
    if (config.diff_ids.size() != manifest.layers.size()) {
      return absl::InvalidArgumentError(absl::StrCat("image config: ", config.diff_ids.size(),
                                                     " diff_ids for ", manifest.layers.size(),
                                                     " layers"));
    }
    rec.config = config.config;
    p.layers_total = static_cast<uint32_t>(manifest.layers.size());
    for (const auto& l : manifest.layers) {
      p.total_bytes += static_cast<uint64_t>(l.size);
      rec.layers.push_back(l.digest);
      Track(rec, l.digest);
    }
    rec.size_bytes = p.total_bytes;
    report("fetching");
    SKIFF_RETURN_IF_ERROR(FetchAndUnpackLayers(ref, manifest.layers, p, report));
    rec.pulled_unix_s = static_cast<int64_t>(time(nullptr));
    Image image;
    {
      absl::MutexLock lock(&mu_);
      auto [it, inserted] = images_.try_emplace(rec.manifest_digest, rec);
      if (!inserted) {
        it->second.pulled_unix_s = rec.pulled_unix_s;
        for (const auto& b : rec.blobs) {
          if (std::find(it->second.blobs.begin(), it->second.blobs.end(), b) ==
              it->second.blobs.end()) {
            it->second.blobs.push_back(b);
          }
        }
      } else {
        it->second.references.clear();
      }
      SKIFF_RETURN_IF_ERROR(AddReferenceLocked(it->second, ref));
      image = ToImage(it->second);
    }
    report("done");
    return image;
  }

  // Fetches and unpacks the layers that are not unpacked yet, up to kParallelLayers at a
  // time (fetching one layer overlaps unpacking another). Progress reports are serialized.
  absl::Status FetchAndUnpackLayers(const Reference& ref, const std::vector<Descriptor>& layers,
                                    PullProgress& p,
                                    const std::function<void(const char*)>& report) {
    constexpr size_t kParallelLayers = 3;
    absl::Mutex progress_mu;
    std::vector<uint64_t> layer_bytes(layers.size(), 0);
    std::vector<absl::Status> results(layers.size());
    size_t next = 0;
    bool failed = false;
    auto update = [&](size_t i, uint64_t bytes, const char* phase, bool layer_done) {
      absl::MutexLock lock(&progress_mu);
      p.done_bytes += bytes - layer_bytes[i];
      layer_bytes[i] = bytes;
      if (layer_done) ++p.layers_done;
      report(phase);
    };
    auto one = [&](size_t i) -> absl::Status {
      const Descriptor& l = layers[i];
      if (!LayerUnpacked(l.digest)) {
        SKIFF_ASSIGN_OR_RETURN(std::string blob_path, EnsureBlob(ref, l, [&](uint64_t n) {
                                 update(i, std::min<uint64_t>(n, l.size), "fetching", false);
                               }));
        update(i, static_cast<uint64_t>(l.size), "unpacking", false);
        SKIFF_RETURN_IF_ERROR(UnpackOnce(blob_path, l.digest).status());
      }
      update(i, static_cast<uint64_t>(l.size), "fetching", true);
      return absl::OkStatus();
    };
    auto worker = [&] {
      for (;;) {
        size_t i;
        {
          absl::MutexLock lock(&progress_mu);
          if (next >= layers.size() || failed) return;
          i = next++;
        }
        results[i] = one(i);
        if (!results[i].ok()) {
          absl::MutexLock lock(&progress_mu);
          failed = true;
        }
      }
    };
    std::vector<std::thread> threads;
    for (size_t w = 1; w < std::min(kParallelLayers, layers.size()); ++w) {
      threads.emplace_back(worker);
    }
    worker();
    for (auto& t : threads) t.join();
    for (const auto& r : results) SKIFF_RETURN_IF_ERROR(r);
    return absl::OkStatus();
  }

  // Points `ref` at `r` (moving it off any other image) and saves refs.json.
  absl::Status AddReferenceLocked(Record& r, const Reference& ref)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const std::string name = ref.String();
    if (auto old = refs_.find(name); old != refs_.end() && old->second != r.manifest_digest) {
      if (auto o = images_.find(old->second); o != images_.end()) {
        auto& v = o->second.references;
        v.erase(std::remove(v.begin(), v.end(), name), v.end());
      }
    }
    refs_[name] = r.manifest_digest;
    if (std::find(r.references.begin(), r.references.end(), name) == r.references.end()) {
      r.references.push_back(name);
    }
    return SaveLocked();
  }

  const StoreOptions options_;
  const std::unique_ptr<ContentStore> blobs_;
  RegistryClient registry_;
  const std::string layers_dir_;
  const std::string refs_path_;

  absl::Mutex mu_;
  std::map<std::string, Record> images_ ABSL_GUARDED_BY(mu_);     // by manifest digest
  std::map<std::string, std::string> refs_ ABSL_GUARDED_BY(mu_);  // reference → digest
  std::map<std::string, int> users_ ABSL_GUARDED_BY(mu_);         // digest → instances
  std::map<std::string, int> pinned_ ABSL_GUARDED_BY(mu_);        // blobs of pulls under way
  std::map<std::string, std::shared_ptr<InFlight>> unpacking_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<std::unique_ptr<ImageStore>> ImageStore::Open(const StoreOptions& options) {
  if (options.root.empty() || options.root.front() != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("image store root \"", options.root, "\": want an absolute path"));
  }
  SKIFF_RETURN_IF_ERROR(MakeDirs(options.root));
  SKIFF_ASSIGN_OR_RETURN(std::unique_ptr<ContentStore> blobs, ContentStore::Open(options.root));
  auto store = std::make_unique<ImageStoreImpl>(options, std::move(blobs));
  SKIFF_RETURN_IF_ERROR(store->Load());
  return std::unique_ptr<ImageStore>(std::move(store));
}

}  // namespace skiff::images
