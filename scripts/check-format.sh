#!/usr/bin/env bash
# Fails (listing the files) if any tracked C++ source differs from clang-format's output.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=()
while IFS= read -r -d '' f; do
  if ! clang-format --style=file --dry-run --Werror "$f" >/dev/null 2>&1; then
    bad+=("$f")
  fi
done < <(git ls-files -z -- '*.cc' '*.h' 2>/dev/null || find . -name '*.cc' -o -name '*.h' -print0)
if ((${#bad[@]})); then
  echo "check-format: not clang-formatted (run clang-format -i):" >&2
  printf '  %s\n' "${bad[@]}" >&2
  exit 1
fi
echo "check-format: $(git ls-files -- '*.cc' '*.h' | wc -l) files clean"
