#!/usr/bin/env bash
# Installs skiff's build and test dependencies (Debian 12 packages only).
# Idempotent, and fast when everything is already installed.
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config clang-format
  # libraries
  libseccomp-dev libcap-dev libprotobuf-dev protobuf-compiler libgrpc++-dev
  protobuf-compiler-grpc libspdlog-dev libfmt-dev libgtest-dev libgmock-dev
  libcurl4-openssl-dev libssl-dev nlohmann-json3-dev libarchive-dev zlib1g-dev
  libzstd-dev libabsl-dev libbenchmark-dev libboost-dev libnghttp2-dev
  # runtime tools, test payloads and peers
  python3 openssl debootstrap iproute2 curl jq busybox-static docker-registry skopeo umoci crun runc hyperfine
  # ingress peers: a reverse proxy to compare with, a load generator, a metrics scraper
  nginx-light wrk prometheus nghttp2-client nghttp2-server containerd
  # gen2 guest: the minimal kernel build (kconfig, objtool)
  flex bison libelf-dev
  # gen2: guest root images, initramfs checks, the QEMU peer, the virtio fuzzer
  erofs-utils cpio qemu-system-x86 clang libclang-rt-14-dev
  # gen2: depmod for the Debian guest kernel's modules (scripts/guest-kernel.sh)
  kmod
  # scripts/bench/ingress-unthrottle --trace: where the unthrottle's time goes
  bpftrace
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup: all ${#PACKAGES[@]} packages present" >&2
fi
