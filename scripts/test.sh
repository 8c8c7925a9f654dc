#!/usr/bin/env bash
# Sets up, builds and runs the whole suite (every CTest label), ending with ctest's summary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
BUILD_DIR="${SKIFF_BUILD_DIR:-build}"
cd "$BUILD_DIR"
# Privileged tests share host resources (cgroups, netns names): run serially.
ctest --output-on-failure --timeout 600 "$@"
