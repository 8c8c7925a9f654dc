#!/usr/bin/env bash
# The gen2 guest kernel, fetched or built into a cache; nothing is installed on the host.
#
#   scripts/guest-kernel.sh                 Debian's kernel (linux-image-amd64, resolved to the
#                                           versioned linux-image-6.1.0-*-amd64 package) via
#                                           `apt-get download`, unpacked with dpkg-deb; plus the
#                                           modules skiff-init must load (virtio-mmio, blk, net,
#                                           console, erofs, overlay and their dependencies)
#   scripts/guest-kernel.sh --minimal       a small microVM kernel built from Debian's
#                                           linux-source with tinyconfig + the checked-in
#                                           fragment sandbox/gen2/guest/kernel/microvm.config
#                                           (no modules), cached by the fragment's hash
#   scripts/guest-kernel.sh --check-config DIR
#                                           merge tinyconfig + the fragment in DIR (a scratch
#                                           copy of the source tree is made there) and check
#                                           that every option of the fragment survived
#
# Cache: ${SKIFF_CACHE:-/var/cache/skiff}/guest-kernel/
#   debian/<kernel release>/{vmlinuz,config,modules/*.ko,modules.list}
#   minimal/<sha256 of fragment + source version>/{bzImage,config}
#   src/<linux-source package version>/linux-source-*/  (unpacked once)
#
# Output (stdout, one key=value per line, nothing else):
#   kernel=<path> version=<kernel release> config=<path> [modules_dir=<path> modules_list=<path>]
# modules.list holds one file name per line (in modules_dir), in load order: every module
# after its dependencies. skiff-init loads them in that order with finit_module.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FRAGMENT="${ROOT}/sandbox/gen2/guest/kernel/microvm.config"
CACHE="${SKIFF_CACHE:-/var/cache/skiff}/guest-kernel"
# The modules a Debian guest needs for its devices and root filesystem. crc32c_generic comes
# first: libcrc32c (an erofs dependency) asks the crypto API for "crc32c" when it loads, and
# the guest has no modprobe to fetch it on demand.
WANTED_MODULES=(crc32c_generic virtio_mmio virtio_blk virtio_net virtio_console erofs overlay)

log() { echo "guest-kernel: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# Resolves a metapackage (linux-image-amd64, linux-source) to the package it depends on
# whose name matches the pattern.
resolve_package() {
  local meta="$1" pattern="$2" dep
  dep="$(apt-cache depends --important "$meta" 2>/dev/null |
    awk -v pat="$pattern" '$1 == "Depends:" && $2 ~ pat { print $2; exit }')"
  [[ -n "$dep" ]] || die "apt-cache depends ${meta}: no dependency matching ${pattern}"
  echo "$dep"
}

package_version() {
  apt-cache policy "$1" | awk '$1 == "Candidate:" { print $2 }'
}

# apt-get download + dpkg-deb -x into $2.
download_and_unpack() {
  local pkg="$1" dest="$2" dl
  dl="$(mktemp -d "${CACHE}/.download.XXXXXX")"
  (cd "$dl" && apt-get download -q "$pkg" >&2) || {
    rm -rf "$dl"
    die "apt-get download ${pkg} failed"
  }
  mkdir -p "$dest"
  dpkg-deb -x "$dl"/*.deb "$dest"
  rm -rf "$dl"
}

# ---- Debian's kernel -----------------------------------------------------------------

debian_kernel() {
  local pkg krel out tmp
  pkg="$(resolve_package linux-image-amd64 '^linux-image-[0-9].*-amd64$')"
  krel="${pkg#linux-image-}"
  out="${CACHE}/debian/${krel}"
  if [[ ! -f "${out}/.complete" ]]; then
    log "fetching ${pkg} ($(package_version "$pkg"))"
    mkdir -p "${CACHE}/debian"
    tmp="$(mktemp -d "${CACHE}/debian/.build.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    download_and_unpack "$pkg" "${tmp}/pkg"
    local moddir="${tmp}/pkg/lib/modules/${krel}"
    [[ -f "${tmp}/pkg/boot/vmlinuz-${krel}" ]] || die "${pkg}: no boot/vmlinuz-${krel}"
    # The package ships no modules.dep (depmod makes it on install): make it in the tree.
    depmod -b "${tmp}/pkg" "$krel" || die "depmod -b ${tmp}/pkg ${krel} failed"
    mkdir -p "${tmp}/out/modules"
    cp "${tmp}/pkg/boot/vmlinuz-${krel}" "${tmp}/out/vmlinuz"
    cp "${tmp}/pkg/boot/config-${krel}" "${tmp}/out/config"
    collect_modules "$moddir" "${tmp}/out/modules" >"${tmp}/out/modules.list"
    touch "${tmp}/out/.complete"
    rm -rf "$out"
    mv "${tmp}/out" "$out"
    rm -rf "$tmp"
    trap - EXIT
  fi
  echo "kernel=${out}/vmlinuz"
  echo "version=${krel}"
  echo "config=${out}/config"
  echo "modules_dir=${out}/modules"
  echo "modules_list=${out}/modules.list"
}

# Copies WANTED_MODULES and their dependencies (from modules.dep) into $2, decompressed,
# and prints their file names in load order. Built-in modules (modules.builtin) are skipped.
collect_modules() {
  local moddir="$1" dest="$2"
  declare -A dep_of=() path_of=() done_=()
  local line path deps name
  while IFS= read -r line; do
    path="${line%%:*}"
    deps="${line#*:}"
    name="$(module_name "$path")"
    path_of[$name]="$path"
    dep_of[$name]="$deps"
  done <"${moddir}/modules.dep"

  local order=()
  visit() {
    local m="$1" d
    [[ -n "${done_[$m]:-}" ]] && return
    done_[$m]=1
    # modules.dep lists a module's dependencies so that the last one is loaded first.
    local list=(${dep_of[$m]})
    local i
    for ((i = ${#list[@]} - 1; i >= 0; i--)); do
      visit "$(module_name "${list[$i]}")"
    done
    order+=("$m")
  }
  local m
  for m in "${WANTED_MODULES[@]}"; do
    if [[ -n "${path_of[$m]:-}" ]]; then
      visit "$m"
    elif grep -q "/${m}.ko" "${moddir}/modules.builtin" 2>/dev/null; then
      log "${m}: built in"
    else
      die "module ${m}: neither in modules.dep nor modules.builtin"
    fi
  done
  for m in "${order[@]}"; do
    local src="${moddir}/${path_of[$m]}"
    case "$src" in
      *.ko.xz) xz -dc "$src" >"${dest}/${m}.ko" ;;
      *.ko.zst) zstd -qdc "$src" >"${dest}/${m}.ko" ;;
      *.ko.gz) gzip -dc "$src" >"${dest}/${m}.ko" ;;
      *.ko) cp "$src" "${dest}/${m}.ko" ;;
      *) die "module ${m}: unknown file type ${src}" ;;
    esac
    echo "${m}.ko"
  done
}

# kernel/fs/erofs/erofs.ko.xz -> erofs (dashes are underscores in module names).
module_name() {
  local base="${1##*/}"
  base="${base%%.ko*}"
  echo "${base//-/_}"
}

# ---- the minimal kernel --------------------------------------------------------------

# Unpacks Debian's linux-source once; prints the source tree's path.
kernel_source() {
  local pkg ver dir tmp tarball
  pkg="$(resolve_package linux-source '^linux-source-[0-9.]+$')"
  ver="$(package_version "$pkg")"
  dir="${CACHE}/src/${ver}"
  if [[ ! -f "${dir}/.complete" ]]; then
    log "fetching ${pkg} (${ver})"
    mkdir -p "${CACHE}/src"
    tmp="$(mktemp -d "${CACHE}/src/.build.XXXXXX")"
    download_and_unpack "$pkg" "${tmp}/pkg"
    tarball="$(ls "${tmp}"/pkg/usr/src/linux-source-*.tar.xz | head -n1)"
    [[ -f "$tarball" ]] || die "${pkg}: no usr/src/linux-source-*.tar.xz"
    mkdir -p "${tmp}/out"
    tar -C "${tmp}/out" -xJf "$tarball"
    rm -rf "${tmp}/pkg"
    touch "${tmp}/out/.complete"
    rm -rf "$dir"
    mv "${tmp}/out" "$dir"
    rm -rf "$tmp"
  fi
  ls -d "${dir}"/linux-source-*/ | head -n1 | sed 's:/$::'
}

# tinyconfig + the fragment in the build dir $2 (out of tree) of source $1.
merge_config() {
  local src="$1" build="$2"
  make -s -C "$src" O="$build" ARCH=x86_64 tinyconfig >&2
  "${src}/scripts/kconfig/merge_config.sh" -m -O "$build" "${build}/.config" "$FRAGMENT" >&2
  make -s -C "$src" O="$build" ARCH=x86_64 olddefconfig >&2
}

# Every CONFIG_X=v and "# CONFIG_X is not set" line of the fragment holds in .config $1.
check_config() {
  local config="$1" line opt bad=0
  while IFS= read -r line; do
    if [[ "$line" =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
      grep -qxF "$line" "$config" || {
        log "missing from .config: ${line} (have: $(grep -E "^(# )?${BASH_REMATCH[1]}[= ]" "$config" || echo unset))"
        bad=1
      }
    elif [[ "$line" =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
      opt="${BASH_REMATCH[1]}"
      if grep -qE "^${opt}=" "$config"; then
        log "should be unset in .config: $(grep -E "^${opt}=" "$config")"
        bad=1
      fi
    fi
  done <"$FRAGMENT"
  return $bad
}

minimal_kernel() {
  local src ver hash out build start
  src="$(kernel_source)"
  ver="$(package_version "$(resolve_package linux-source '^linux-source-[0-9.]+$')")"
  hash="$( (cat "$FRAGMENT"; echo "source=${ver}") | sha256sum | cut -c1-16)"
  out="${CACHE}/minimal/${hash}"
  if [[ ! -f "${out}/.complete" ]]; then
    mkdir -p "${CACHE}/minimal"
    build="$(mktemp -d "${CACHE}/minimal/.build.XXXXXX")"
    trap 'rm -rf "$build"' EXIT
    start=$(date +%s)
    log "building the minimal kernel from ${src} in ${build}"
    merge_config "$src" "$build"
    check_config "${build}/.config" || die "the merged config lacks options of ${FRAGMENT}"
    make -s -C "$src" O="$build" ARCH=x86_64 -j"$(nproc)" bzImage >&2
    mkdir -p "${build}/out"
    cp "${build}/arch/x86/boot/bzImage" "${build}/out/bzImage"
    cp "${build}/.config" "${build}/out/config"
    make -s -C "$src" O="$build" ARCH=x86_64 kernelrelease >"${build}/out/release"
    touch "${build}/out/.complete"
    rm -rf "$out"
    mv "${build}/out" "$out"
    rm -rf "$build"
    trap - EXIT
    log "built in $(($(date +%s) - start)) s"
  fi
  echo "kernel=${out}/bzImage"
  echo "version=$(cat "${out}/release")"
  echo "config=${out}/config"
}

check_config_only() {
  local dir="$1" src
  src="$(kernel_source)"
  mkdir -p "$dir"
  merge_config "$src" "$dir"
  check_config "${dir}/.config" || die "the merged config lacks options of ${FRAGMENT}"
  echo "config=${dir}/.config"
}

case "${1:-}" in
  "") debian_kernel ;;
  --minimal) minimal_kernel ;;
  --check-config)
    [[ -n "${2:-}" ]] || die "--check-config needs a scratch directory"
    check_config_only "$2"
    ;;
  -h | --help) sed -n '2,28p' "$0" ;;
  *) die "unknown argument: $1 (try --help)" ;;
esac
