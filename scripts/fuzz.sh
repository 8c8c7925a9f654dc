#!/usr/bin/env bash
# Builds a libFuzzer target with clang++ -fsanitize=fuzzer,address,undefined (compiling its
# sources directly, abseil/spdlog from pkg-config) and runs it for a while over a scratch copy
# of its checked-in seed corpus. The normal g++ build only replays the corpus (ctest
# virtio_queue_fuzz_replay); this is the real fuzzing.
#
#   scripts/fuzz.sh [target] [seconds] [extra libFuzzer flags...]
#   scripts/fuzz.sh virtio_queue 300
#
# Output: build-fuzz/<target>/ ($FUZZ_OUT/<target>: binary, corpus, crash-* files). New crashes are left there
# as crash-<sha1>; reproduce one with: build-fuzz/<target>/<target>_fuzz <crash file>.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-virtio_queue}
seconds=${2:-60}
shift $(( $# > 2 ? 2 : $# ))

case "$target" in
  virtio_queue)
    sources=(tests/fuzz/virtio_queue_fuzz.cc
             sandbox/gen2/devices/event_loop.cc
             sandbox/gen2/devices/virtio/queue.cc
             sandbox/gen2/devices/virtio/mmio_transport.cc
             sandbox/gen2/devices/virtio/blk.cc
             sandbox/gen2/devices/virtio/tap.cc
             sandbox/gen2/devices/virtio/net.cc
             sandbox/gen2/devices/virtio/console.cc
             sandbox/gen2/vmm/guest_memory.cc
             sandbox/common/status.cc
             sandbox/common/unique_fd.cc)
    ;;
  *) echo "fuzz.sh: unknown target '$target' (known: virtio_queue)" >&2; exit 2 ;;
esac

out=${FUZZ_OUT:-build-fuzz}/$target
mkdir -p "$out/corpus"
bin=$out/${target}_fuzz
CXX=${CXX:-clang++}
libs=$(pkg-config --cflags --libs absl_status absl_statusor absl_strings absl_str_format \
       absl_synchronization spdlog fmt)
echo "fuzz.sh: building $bin"
# shellcheck disable=SC2086
"$CXX" -std=c++20 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=undefined -I. -o "$bin" "${sources[@]}" $libs -lpthread

cp -n tests/fuzz/corpus/$target/* "$out/corpus/" 2>/dev/null || true
echo "fuzz.sh: running $target for ${seconds}s"
"$bin" -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$out/" \
  -max_len=32768 "$@" "$out/corpus"
