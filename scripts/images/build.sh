#!/usr/bin/env bash
# Builds skiff's example OCI images from Debian packages (busybox-static, openssl) and pushes
# them to a registry.
#
#   scripts/images/build.sh [--registry 127.0.0.1:PORT] [--only NAME[,NAME...]]... [--skip-big]
#                           [--with-flask] [--testapp-bin PATH]
#
# Images: hello sigterm-handler sigterm-ignorer forker memhog multilayer job multiarch big
# (see docs/images-examples.md). flask (a Debian 12 python3-flask + gunicorn app, built with
# debootstrap: needs root and the Debian mirror, minutes cold) is built only when named:
# --only flask, or --with-flask on top of the default set. testapp (the static skiff-testapp
# binary the project builds, tests/payloads/testapp) is built only when named too (--only testapp);
# its binary comes from --testapp-bin PATH, else $SKIFF_TESTAPP_BIN, else
# ${SKIFF_BUILD_DIR:-build}/tests/payloads/testapp/skiff-testapp. Each is pushed as <registry>/skiff/<name>:latest;
# hello is also pushed as skiff/hello:docker in Docker v2 schema 2 form.
# Without --registry the images are only built; each image's OCI layout path is printed.
#
# How: the OCI image layout is written directly (tar with fixed order, owners and mtimes;
# gzip -n; sha256sum; JSON with jq), then `skopeo copy oci:... docker://...` pushes it.
# Writing the layout ourselves is faster than umoci's unpack/repack cycle and reproducible:
# the same script and busybox build give byte-identical blobs, so the shared base layers
# have the same digest in every image.
#
# Layouts are cached under ${SKIFF_CACHE:-/var/cache/skiff}/images/<key>/<name> (or
# ~/.cache/skiff when /var/cache/skiff is not writable), where
# <key> hashes this script, scripts/images/flask/* and the busybox binary (other keys are
# dropped after an hour); big's data layers and flask's debootstrapped rootfs layer are cached
# separately (they depend only on their recipe). A re-run pushes from the cache in seconds.
set -euo pipefail
umask 022
export LC_ALL=C

ALL_IMAGES=(hello sigterm-handler sigterm-ignorer forker memhog multilayer job multiarch big)
OPT_IN_IMAGES=(flask testapp)  # built only when named (--only flask, --with-flask)
SCRIPT_DIR="$(cd "$(dirname "$0")" && pwd)"
FLASK_DIR="$SCRIPT_DIR/flask"
BIG_LAYER_MIB="${SKIFF_BIG_LAYER_MIB:-150}"
BIG_RECIPE="aes-128-ctr-v1"
BUSYBOX="${SKIFF_BUSYBOX:-/bin/busybox}"

die() {
  echo "images/build.sh: $*" >&2
  exit 1
}
log() { echo "images/build.sh: $*" >&2; }

registry=""
only=()
skip_big=0
with_flask=0
testapp_bin="${SKIFF_TESTAPP_BIN:-}"
while (($#)); do
  case "$1" in
    --registry) registry="${2:?--registry needs host:port}"; shift 2 ;;
    --only)
      IFS=, read -r -a names <<<"${2:?--only needs a name}"
      only+=("${names[@]}")
      shift 2
      ;;
    --skip-big) skip_big=1; shift ;;
    --with-flask) with_flask=1; shift ;;
    --testapp-bin) testapp_bin="${2:?--testapp-bin needs a path}"; shift 2 ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0" >&2; exit 0 ;;
    *) die "unknown argument: $1" ;;
  esac
done
if [[ -n "$registry" && ! "$registry" =~ ^[A-Za-z0-9.-]+(:[0-9]+)?$ ]]; then
  die "--registry: not a host[:port]: $registry"
fi

selected=()
if ((${#only[@]})); then
  for n in "${only[@]}"; do
    found=0
    for a in "${ALL_IMAGES[@]}" "${OPT_IN_IMAGES[@]}"; do [[ "$n" == "$a" ]] && found=1; done
    ((found)) || die "--only: unknown image '$n' (known: ${ALL_IMAGES[*]} ${OPT_IN_IMAGES[*]})"
    [[ "$n" == big && $skip_big == 1 ]] && continue
    selected+=("$n")
  done
else
  for a in "${ALL_IMAGES[@]}"; do
    [[ "$a" == big && $skip_big == 1 ]] && continue
    selected+=("$a")
  done
fi
if ((with_flask)) && [[ " ${selected[*]} " != *" flask "* ]]; then
  selected+=(flask)
fi

for tool in tar gzip sha256sum jq openssl flock; do
  command -v "$tool" >/dev/null || die "$tool not found (run scripts/setup.sh)"
done
[[ -x "$BUSYBOX" ]] || die "$BUSYBOX not found (apt-get install busybox-static)"
if [[ "$BUSYBOX" == /bin/busybox ]] &&
  ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "ok installed"; then
  die "busybox-static is not installed (the images need a static busybox; run scripts/setup.sh)"
fi
if [[ -n "$registry" ]]; then
  command -v skopeo >/dev/null || die "skopeo not found (run scripts/setup.sh)"
fi

if [[ " ${selected[*]} " == *" testapp "* ]]; then
  if [[ -z "$testapp_bin" ]]; then
    testapp_bin="${SKIFF_BUILD_DIR:-$SCRIPT_DIR/../../build}/tests/payloads/testapp/skiff-testapp"
  fi
  [[ -f "$testapp_bin" && -x "$testapp_bin" ]] ||
    die "testapp: $testapp_bin is not an executable (build the skiff-testapp target, or pass --testapp-bin PATH)"
  command -v readelf >/dev/null || die "readelf not found (apt-get install binutils)"
  readelf -h "$testapp_bin" 2>/dev/null | grep -q 'Machine:.*X86-64' ||
    die "testapp: $testapp_bin is not an x86-64 ELF executable"
  readelf -l "$testapp_bin" 2>/dev/null | grep -q 'INTERP' &&
    die "testapp: $testapp_bin is dynamically linked (the image has no libc: link it -static)"
  testapp_bin="$(readlink -f "$testapp_bin")"
fi

CACHE_BASE="${SKIFF_CACHE:-/var/cache/skiff}"
if [[ -z "${SKIFF_CACHE:-}" ]] && ! { mkdir -p "$CACHE_BASE" && [[ -w "$CACHE_BASE" ]]; } 2>/dev/null; then
  CACHE_BASE="${XDG_CACHE_HOME:-$HOME/.cache}/skiff"  # not root: a per-user cache
fi
CACHE_ROOT="$CACHE_BASE/images"
KEY="$(cat "$0" "$FLASK_DIR"/* "$BUSYBOX" | sha256sum | cut -c1-16)"
KEY_DIR="$CACHE_ROOT/$KEY"
mkdir -p "$KEY_DIR"

# ---------------------------------------------------------------------------------------
# OCI layout writer. An image is built by: begin_image NAME; add_layer DIR ...;
# finish_image ENTRYPOINT_JSON CMD_JSON [ENV...].

WORK=""
OUT=""
LAYERS_JSON="[]"
DIFF_IDS_JSON="[]"
HISTORY_JSON="[]"

begin_image() {
  OUT="$KEY_DIR/$1.tmp.$$"
  rm -rf "$OUT"
  mkdir -p "$OUT/blobs/sha256"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$OUT/oci-layout"
  LAYERS_JSON="[]"
  DIFF_IDS_JSON="[]"
  HISTORY_JSON="[]"
}

# blob_to_layout FILE: moves FILE into the layout's blobs, echoes its hex digest.
blob_to_layout() {
  local hex
  hex="$(sha256sum <"$1" | cut -d' ' -f1)"
  mv -f "$1" "$OUT/blobs/sha256/$hex"
  echo "$hex"
}

# make_layer_blob DIR DEST: writes DEST (tar.gz) and DEST.diffid (uncompressed sha256 hex).
# Entries are named without "./", sorted, owned by 0:0, mtime 0; hardlinks inside DIR
# become tar hardlinks.
make_layer_blob() {
  local dir="$1" dest="$2"
  (cd "$dir" && find . -mindepth 1 -printf '%P\n' | sort) |
    tar -C "$dir" --no-recursion -T - --mtime=@0 --owner=0 --group=0 --numeric-owner \
      --format=gnu -cf "$dest.tar"
  sha256sum <"$dest.tar" | cut -d' ' -f1 >"$dest.diffid"
  gzip -n -6 <"$dest.tar" >"$dest"
  rm -f "$dest.tar"
}

# add_blob_layer TARGZ DIFFID_HEX COMMENT: adds a prebuilt layer (copied into the layout).
add_blob_layer() {
  local tmp="$OUT/blob.tmp" hex size
  ln -f "$1" "$tmp" 2>/dev/null || cp "$1" "$tmp"  # blobs are immutable: share the inode
  hex="$(blob_to_layout "$tmp")"
  size="$(stat -c %s "$OUT/blobs/sha256/$hex")"
  LAYERS_JSON="$(jq -c --arg d "sha256:$hex" --argjson s "$size" \
    '. + [{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $d, size: $s}]' \
    <<<"$LAYERS_JSON")"
  DIFF_IDS_JSON="$(jq -c --arg d "sha256:$2" '. + [$d]' <<<"$DIFF_IDS_JSON")"
  HISTORY_JSON="$(jq -c --arg c "$3" \
    '. + [{created: "1970-01-01T00:00:00Z", created_by: ("scripts/images/build.sh: " + $c)}]' \
    <<<"$HISTORY_JSON")"
}

# add_layer DIR COMMENT: tars DIR as the next layer.
add_layer() {
  local blob="$OUT/layer.tar.gz"
  make_layer_blob "$1" "$blob"
  add_blob_layer "$blob" "$(cat "$blob.diffid")" "$2"
  rm -f "$blob" "$blob.diffid"
}

# finish_image NAME ENTRYPOINT_JSON CMD_JSON ENV_JSON WORKDIR
finish_image() {
  local name="$1" cfg="$OUT/config.tmp" man="$OUT/manifest.tmp" cfg_hex man_hex
  jq -cn --argjson ep "$2" --argjson cmd "$3" --argjson env "$4" --arg wd "$5" \
    --argjson diffs "$DIFF_IDS_JSON" --argjson hist "$HISTORY_JSON" --arg name "$name" '{
      created: "1970-01-01T00:00:00Z",
      architecture: "amd64",
      os: "linux",
      config: ({
        Env: $env, Entrypoint: $ep, Cmd: $cmd, WorkingDir: $wd,
        ExposedPorts: {"8080/tcp": {}},
        Labels: {"org.opencontainers.image.title": ("skiff example: " + $name)}
      } | with_entries(select(.value != null))),
      rootfs: {type: "layers", diff_ids: $diffs},
      history: $hist
    }' >"$cfg"
  local cfg_size
  cfg_size="$(stat -c %s "$cfg")"
  cfg_hex="$(blob_to_layout "$cfg")"
  jq -cn --arg cd "sha256:$cfg_hex" --argjson cs "$cfg_size" --argjson layers "$LAYERS_JSON" '{
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $cd, size: $cs},
      layers: $layers
    }' >"$man"
  local man_size
  man_size="$(stat -c %s "$man")"
  man_hex="$(blob_to_layout "$man")"
  jq -cn --arg md "sha256:$man_hex" --argjson ms "$man_size" '{
      schemaVersion: 2,
      manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $md,
                   size: $ms, annotations: {"org.opencontainers.image.ref.name": "latest"}}]
    }' >"$OUT/index.json"
  rm -rf "${KEY_DIR:?}/$name"
  mv "$OUT" "$KEY_DIR/$name"
  OUT=""
}

# ---------------------------------------------------------------------------------------
# Shared layers: built once per key, reused (byte-identical) by every image.

# base: busybox with every applet as a symlink in /bin, /etc/passwd and /etc/group, the
# usual empty mount points.
build_base_layer() {
  local d="$WORK/base"
  mkdir -p "$d"/{bin,etc,dev,proc,sys,tmp,root,var,run}
  chmod 1777 "$d/tmp"
  chmod 0700 "$d/root"
  cp "$BUSYBOX" "$d/bin/busybox"
  chmod 0755 "$d/bin/busybox"
  local applet
  for applet in $("$BUSYBOX" --list); do
    [[ "$applet" == busybox ]] || ln -s busybox "$d/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
    >"$d/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$d/etc/group"
  make_layer_blob "$d" "$KEY_DIR/layer-base.tar.gz"
}

# www: the page every example serves.
build_www_layer() {
  local d="$WORK/www"
  mkdir -p "$d/www"
  echo "hello from skiff" >"$d/www/index.html"
  make_layer_blob "$d" "$KEY_DIR/layer-www.tar.gz"
}

add_shared_layer() {  # NAME
  local f="$KEY_DIR/layer-$1.tar.gz"
  if [[ ! -f "$f" || ! -f "$f.diffid" ]]; then
    "build_$1_layer"
  fi
  add_blob_layer "$f" "$(cat "$f.diffid")" "$1 layer"
}

# app_layer SCRIPT_NAME: a layer with /app/SCRIPT_NAME (from stdin, mode 0755).
add_app_layer() {
  local d="$WORK/app-$1"
  rm -rf "$d"
  mkdir -p "$d/app"
  cat >"$d/app/$1"
  chmod 0755 "$d/app/$1"
  add_layer "$d" "/app/$1"
}

ENV_DEFAULT='["PATH=/bin"]'
HTTPD_ENTRY='["/bin/sh","-c","exec httpd -f -v -p ${PORT:-8080} -h /www"]'

# ---------------------------------------------------------------------------------------
# The images.

image_hello() {
  begin_image hello
  add_shared_layer base
  add_shared_layer www
  finish_image hello "$HTTPD_ENTRY" null "$ENV_DEFAULT" /
}

image_sigterm-handler() {
  begin_image sigterm-handler
  add_shared_layer base
  add_shared_layer www
  add_app_layer run.sh <<'SCRIPT'
#!/bin/sh
# Serves /www on $PORT; on SIGTERM prints "got SIGTERM" and exits 0 at once.
httpd -f -p "${PORT:-8080}" -h /www &
httpd_pid=$!
sleep_pid=""
on_term() {
  echo "got SIGTERM"
  kill "$httpd_pid" $sleep_pid 2>/dev/null
  exit 0
}
trap on_term TERM
echo "sigterm-handler: listening on ${PORT:-8080}"
while :; do
  sleep 3600 &
  sleep_pid=$!
  wait "$sleep_pid" || sleep 1
done
SCRIPT
  finish_image sigterm-handler '["/app/run.sh"]' null "$ENV_DEFAULT" /
}

image_sigterm-ignorer() {
  begin_image sigterm-ignorer
  add_shared_layer base
  add_shared_layer www
  add_app_layer run.sh <<'SCRIPT'
#!/bin/sh
# Ignores SIGTERM (so do its children, which inherit the ignored disposition) and serves
# /www on $PORT until SIGKILLed.
trap '' TERM
httpd -f -p "${PORT:-8080}" -h /www &
echo "sigterm-ignorer: ignoring SIGTERM, listening on ${PORT:-8080}"
while :; do
  sleep 3600 &
  wait $! || sleep 1
done
SCRIPT
  finish_image sigterm-ignorer '["/app/run.sh"]' null "$ENV_DEFAULT" /
}

image_forker() {
  begin_image forker
  add_shared_layer base
  add_shared_layer www
  add_app_layer run.sh <<'SCRIPT'
#!/bin/sh
# Starts FORK_COUNT (default 4) children that loop on `sleep 1` ignoring SIGTERM, plus one
# more in its own session (setsid) so that only a cgroup-wide kill reaches it, then serves
# /www on $PORT. PID 1 ignores SIGTERM too: everything dies only at SIGKILL.
trap '' TERM
n="${FORK_COUNT:-4}"
i=0
while [ "$i" -lt "$n" ]; do
  (while :; do sleep 1; done) &
  echo "forker: child $i pid $!"
  i=$((i + 1))
done
setsid sh -c 'while :; do sleep 1; done' &
echo "forker: child $n pid $! (own session)"
httpd -f -p "${PORT:-8080}" -h /www &
echo "forker: $((n + 1)) children, listening on ${PORT:-8080}"
while :; do
  sleep 3600 &
  wait $! || sleep 1
done
SCRIPT
  finish_image forker '["/app/run.sh"]' null "$ENV_DEFAULT" /
}

image_memhog() {
  begin_image memhog
  add_shared_layer base
  add_shared_layer www
  add_app_layer run.sh <<'SCRIPT'
#!/bin/sh
# Serves /www on $PORT, waits HOG_START_DELAY seconds (default 0), then doubles a shell
# string (anonymous memory in this shell process) until the OOM killer ends it. For the
# host's sake it stops growing at HOG_MAX_MIB (default 4096) and then just holds the memory.
httpd -f -p "${PORT:-8080}" -h /www &
sleep "${HOG_START_DELAY:-0}"
max=$(( ${HOG_MAX_MIB:-4096} * 1024 * 1024 ))
s=0123456789abcdef
echo "memhog: allocating up to ${HOG_MAX_MIB:-4096} MiB"
while [ "${#s}" -lt "$max" ]; do
  s="$s$s"
  echo "memhog: ${#s} bytes"
done
echo "memhog: reached the cap, holding"
while :; do
  sleep 3600 &
  wait $! || sleep 1
done
SCRIPT
  finish_image memhog '["/app/run.sh"]' null "$ENV_DEFAULT" /
}

image_job() {
  begin_image job
  add_shared_layer base
  add_app_layer job.sh <<'SCRIPT'
#!/bin/sh
# A job task: prints its task env and exits with EXIT_CODE (default 0).
echo "TASK_INDEX=${TASK_INDEX-}"
echo "TASK_COUNT=${TASK_COUNT-}"
echo "TASK_ATTEMPT=${TASK_ATTEMPT-}"
code="${EXIT_CODE:-0}"
echo "job: exiting with ${code}"
exit "$code"
SCRIPT
  finish_image job '["/app/job.sh"]' null "$ENV_DEFAULT" /
}

# multilayer: base, www, then three layers exercising whiteouts, an opaque directory,
# replaced files, symlinks and hardlinks. The final tree is in docs/images-examples.md.
image_multilayer() {
  begin_image multilayer
  add_shared_layer base
  add_shared_layer www
  local d
  # Layer 3.
  d="$WORK/ml3"
  mkdir -p "$d/data/gone-dir/nested" "$d/opaque/sub" "$d/hard"
  echo "keep v1" >"$d/data/keep.txt"
  echo "deleted v1" >"$d/data/deleted.txt"
  echo "replaced v1" >"$d/data/replaced.txt"
  echo "resurrected v1" >"$d/data/resurrected.txt"
  echo "gone a" >"$d/data/gone-dir/a.txt"
  echo "gone b" >"$d/data/gone-dir/nested/b.txt"
  echo "opaque old a" >"$d/opaque/old-a.txt"
  echo "opaque old b" >"$d/opaque/sub/old-b.txt"
  echo "hardlinked v1" >"$d/hard/original.txt"
  ln "$d/hard/original.txt" "$d/hard/link.txt"
  add_layer "$d" "multilayer 3: files, a directory tree, a hardlink"
  # Layer 4.
  d="$WORK/ml4"
  mkdir -p "$d/data" "$d/opaque" "$d/links"
  : >"$d/data/.wh.deleted.txt"
  : >"$d/data/.wh.resurrected.txt"
  : >"$d/data/.wh.gone-dir"
  echo "replaced v2" >"$d/data/replaced.txt"
  : >"$d/opaque/.wh..wh..opq"
  echo "opaque new" >"$d/opaque/new.txt"
  ln -s ../data/keep.txt "$d/links/relative"
  ln -s /data/keep.txt "$d/links/absolute"
  ln -s /data/deleted.txt "$d/links/dangling"
  add_layer "$d" "multilayer 4: whiteouts, an opaque dir, a replaced file, symlinks"
  # Layer 5.
  d="$WORK/ml5"
  mkdir -p "$d/data" "$d/hard"
  echo "replaced v3" >"$d/data/replaced.txt"
  echo "resurrected v5" >"$d/data/resurrected.txt"
  echo "late" >"$d/data/late.txt"
  echo "hardlinked v5" >"$d/hard/second.txt"
  ln "$d/hard/second.txt" "$d/hard/second-link.txt"
  add_layer "$d" "multilayer 5: a file replaced again, a re-created file, another hardlink"
  finish_image multilayer '["/bin/sh","-c","exec httpd -f -v -p ${PORT:-8080} -h /data"]' \
    null "$ENV_DEFAULT" /
}

# multiarch: an OCI image index listing linux/arm64/v8 first and then linux/amd64, whose
# amd64 entry is hello's manifest (same digest). The arm64 manifest has the same layers and
# a config saying arm64: a client that does not select linux/amd64 gets the wrong image.
image_multiarch() {
  [[ -f "$KEY_DIR/hello/index.json" ]] || image_hello
  begin_image multiarch
  local hello="$KEY_DIR/hello" b
  for b in "$hello"/blobs/sha256/*; do
    ln -f "$b" "$OUT/blobs/sha256/" 2>/dev/null || cp "$b" "$OUT/blobs/sha256/"
  done
  local amd64_desc amd64_hex amd64_manifest amd64_config
  amd64_desc="$(jq -c '.manifests[0] | del(.annotations)' "$hello/index.json")"
  amd64_hex="$(jq -r '.digest | sub("^sha256:"; "")' <<<"$amd64_desc")"
  amd64_manifest="$hello/blobs/sha256/$amd64_hex"
  amd64_config="$hello/blobs/sha256/$(jq -r '.config.digest | sub("^sha256:"; "")' "$amd64_manifest")"
  # The arm64 config and manifest.
  local cfg="$OUT/config.tmp" man="$OUT/manifest.tmp" cfg_hex cfg_size man_hex man_size
  jq -c '.architecture = "arm64" | .variant = "v8"' "$amd64_config" >"$cfg"
  cfg_size="$(stat -c %s "$cfg")"
  cfg_hex="$(blob_to_layout "$cfg")"
  jq -c --arg d "sha256:$cfg_hex" --argjson s "$cfg_size" '.config.digest = $d | .config.size = $s' \
    "$amd64_manifest" >"$man"
  man_size="$(stat -c %s "$man")"
  man_hex="$(blob_to_layout "$man")"
  # The index.
  local idx="$OUT/index.tmp" idx_hex idx_size
  jq -cn --arg arm "sha256:$man_hex" --argjson arms "$man_size" --argjson amd "$amd64_desc" '{
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [
        {mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $arm, size: $arms,
         platform: {architecture: "arm64", os: "linux", variant: "v8"}},
        ($amd + {platform: {architecture: "amd64", os: "linux"}})
      ]
    }' >"$idx"
  idx_size="$(stat -c %s "$idx")"
  idx_hex="$(blob_to_layout "$idx")"
  jq -cn --arg d "sha256:$idx_hex" --argjson s "$idx_size" '{
      schemaVersion: 2,
      manifests: [{mediaType: "application/vnd.oci.image.index.v1+json", digest: $d, size: $s,
                   annotations: {"org.opencontainers.image.ref.name": "latest"}}]
    }' >"$OUT/index.json"
  rm -rf "${KEY_DIR:?}/multiarch"
  mv "$OUT" "$KEY_DIR/multiarch"
  OUT=""
}

# big: base + www + two layers of BIG_LAYER_MIB MiB of AES-CTR keystream (incompressible,
# reproducible: fixed key and IV), for pull benchmarks.
build_big_data_layers() {
  local dir="$CACHE_ROOT/big-$BIG_RECIPE-$BIG_LAYER_MIB" i
  if [[ -f "$dir/complete" ]]; then
    echo "$dir"
    return
  fi
  rm -rf "$dir"
  mkdir -p "$dir"
  for i in 1 2; do
    local d="$WORK/big$i"
    mkdir -p "$d/data"
    log "big: generating layer $i ($BIG_LAYER_MIB MiB)"
    head -c "$((BIG_LAYER_MIB * 1024 * 1024))" /dev/zero |
      openssl enc -aes-128-ctr -nosalt -K "$(printf '%032x' "$i")" -iv "$(printf '%032x' 0)" >"$d/data/big-$i.bin"
    make_layer_blob "$d" "$dir/layer-$i.tar.gz"
    rm -rf "$d"
  done
  touch "$dir/complete"
  echo "$dir"
}

image_big() {
  local data
  data="$(build_big_data_layers)"
  begin_image big
  add_shared_layer base
  add_shared_layer www
  add_blob_layer "$data/layer-1.tar.gz" "$(cat "$data/layer-1.tar.gz.diffid")" "big data 1"
  add_blob_layer "$data/layer-2.tar.gz" "$(cat "$data/layer-2.tar.gz.diffid")" "big data 2"
  finish_image big "$HTTPD_ENTRY" null "$ENV_DEFAULT" /
}

# flask: Debian 12 minbase with python3, python3-flask and gunicorn (one layer, from
# flask/rootfs.sh, cached under $CACHE_ROOT/flask-rootfs-<recipe hash>), then /app/app.py.
# gunicorn --workers 1 --threads 8 on $PORT (default 8080); SIGTERM stops it gracefully.
build_flask_rootfs_layer() {
  local recipe dir
  recipe="$(cat "$FLASK_DIR/rootfs.sh" | sha256sum | cut -c1-16)"
  dir="$CACHE_ROOT/flask-rootfs-$recipe"
  if [[ -f "$dir/complete" ]]; then
    echo "$dir"
    return
  fi
  rm -rf "$dir"
  mkdir -p "$dir"
  log "flask: building the Debian rootfs with debootstrap (minutes; cached afterwards)"
  "$FLASK_DIR/rootfs.sh" "$dir/layer.tar.gz" >&2 || die "flask: rootfs.sh failed"
  touch "$dir/complete"
  # Rootfs layers of older recipes.
  find "$CACHE_ROOT" -mindepth 1 -maxdepth 1 -type d -name 'flask-rootfs-*' \
    ! -name "flask-rootfs-$recipe" -exec rm -rf {} +
  echo "$dir"
}

image_flask() {
  local rootfs d="$WORK/flask-app"
  rootfs="$(build_flask_rootfs_layer)"
  begin_image flask
  add_blob_layer "$rootfs/layer.tar.gz" "$(cat "$rootfs/layer.tar.gz.diffid")" \
    "flask rootfs: debootstrap --variant=minbase bookworm + python3-flask gunicorn"
  rm -rf "$d"
  mkdir -p "$d/app"
  install -m 0644 "$FLASK_DIR/app.py" "$d/app/app.py"
  add_layer "$d" "/app/app.py"
  finish_image flask \
    '["/bin/sh","-c","exec gunicorn --workers 1 --threads 8 --bind 0.0.0.0:${PORT:-8080} app:app"]' \
    null '["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","PYTHONUNBUFFERED=1","PYTHONDONTWRITEBYTECODE=1","LANG=C.UTF-8"]' /app
}

# testapp: busybox base + one layer with /skiff-testapp (the static binary, mode 0755). The
# layout is rebuilt whenever the binary changes (its sha256 is kept beside the layout).
image_testapp() {
  local d="$WORK/testapp"
  rm -rf "$d"
  mkdir -p "$d"
  install -m 0755 -s "$testapp_bin" "$d/skiff-testapp"  # stripped: no debug info in the image
  begin_image testapp
  add_shared_layer base
  add_layer "$d" "/skiff-testapp (tests/payloads/testapp, static)"
  finish_image testapp '["/skiff-testapp"]' null '["PATH=/bin","PORT=8080"]' /
  sha256sum <"$testapp_bin" | cut -d' ' -f1 >"$KEY_DIR/testapp.bin.sha256"
}

testapp_current() {  # true if the cached testapp layout holds this binary
  [[ -f "$KEY_DIR/testapp.bin.sha256" ]] &&
    [[ "$(cat "$KEY_DIR/testapp.bin.sha256")" == "$(sha256sum <"$testapp_bin" | cut -d' ' -f1)" ]]
}

# ---------------------------------------------------------------------------------------

build_all() {
  WORK="$(mktemp -d "$KEY_DIR/work.XXXXXX")"
  trap 'rm -rf "$WORK" ${OUT:+"$OUT"}' EXIT
  local n
  for n in "${selected[@]}"; do
    if [[ -f "$KEY_DIR/$n/index.json" ]] && { [[ "$n" != testapp ]] || testapp_current; }; then
      continue
    fi
    log "building $n"
    "image_$n"
  done
  rm -rf "$WORK"
  trap - EXIT
}

# One builder at a time per cache (tests and the demo may run this concurrently).
exec 9>"$CACHE_ROOT/.lock"
flock 9
# Drop layouts built by other versions of this script an hour ago or more (a concurrent
# run of another version may still be pushing from a newer one); big's data layers stay.
while IFS= read -r d; do
  [[ "${d##*/}" =~ ^[0-9a-f]{16}$ && "${d##*/}" != "$KEY" ]] && rm -rf "$d"
done < <(find "$CACHE_ROOT" -mindepth 1 -maxdepth 1 -type d -mmin +60)
build_all
flock -u 9

if [[ -z "$registry" ]]; then
  for n in "${selected[@]}"; do
    echo "$KEY_DIR/$n"
  done
  exit 0
fi

POLICY="$CACHE_ROOT/policy.json"
[[ -f "$POLICY" ]] || echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$POLICY"
push() {  # LAYOUT DEST [skopeo flags]
  local layout="$1" dest="$2"
  shift 2
  skopeo --policy "$POLICY" copy --quiet --retry-times 2 --dest-tls-verify=false "$@" \
    "oci:$layout:latest" "docker://$dest" ||
    die "push of $layout to $dest failed"
}
for n in "${selected[@]}"; do
  dest="$registry/skiff/$n:latest"
  if [[ "$n" == multiarch ]]; then
    push "$KEY_DIR/$n" "$dest" --all  # the index and every manifest in it
  else
    push "$KEY_DIR/$n" "$dest"
  fi
  digest="$(jq -r '.manifests[0].digest' "$KEY_DIR/$n/index.json")"
  echo "$dest $digest"
  if [[ "$n" == hello ]]; then
    push "$KEY_DIR/$n" "$registry/skiff/hello:docker" --format v2s2
    echo "$registry/skiff/hello:docker (docker v2 schema 2)"
  fi
done
