#!/usr/bin/env bash
# Runs a local OCI registry (Debian's docker-registry, the reference distribution server)
# on 127.0.0.1 for skiff's demo and tests.
#
#   scripts/registry.sh start  [--dir DIR] [--port N]   prints the address 127.0.0.1:PORT
#   scripts/registry.sh status [--dir DIR]              prints the address if it answers
#   scripts/registry.sh stop   [--dir DIR]              kills it and removes DIR
#
# DIR (default: a new /tmp/skiff-registry-XXXXXX) holds config.yml, data/ (the registry's
# storage), registry.log, port and pid. Without --dir, status and stop act on the last
# registry started without --dir (recorded in /tmp/skiff-registry.last).
# Without --port a free port is picked (and another one tried if binding fails).
set -euo pipefail

LAST_FILE="${TMPDIR:-/tmp}/skiff-registry.last"

die() {
  echo "registry.sh: $*" >&2
  exit 1
}

usage() {
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0" >&2
  exit 2
}

cmd="${1:-}"
[[ -n "$cmd" ]] || usage
shift
dir=""
port=""
while (($#)); do
  case "$1" in
    --dir) dir="${2:?--dir needs a value}"; shift 2 ;;
    --port) port="${2:?--port needs a value}"; shift 2 ;;
    -h | --help) usage ;;
    *) die "unknown argument: $1" ;;
  esac
done
if [[ -n "$port" ]] && ! [[ "$port" =~ ^[0-9]+$ && "$port" -ge 1 && "$port" -le 65535 ]]; then
  die "--port: not a port number: $port"
fi

# True if /v2/ on 127.0.0.1:$1 answers 200.
answers() {
  [[ "$(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$1/v2/")" == 200 ]]
}

# True if a TCP listener is bound to the port on any local address.
port_in_use() {
  ss -Htln "sport = :$1" | grep -q .
}

pick_port() {
  local p i
  for ((i = 0; i < 100; i++)); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    port_in_use "$p" || {
      echo "$p"
      return 0
    }
  done
  die "no free port found"
}

# True if the process exists and is not a zombie (an exited process not yet reaped).
pid_alive() {
  [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null &&
    [[ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" != Z ]]
}

resolve_dir() {
  if [[ -z "$dir" ]]; then
    [[ -f "$LAST_FILE" ]] || die "no --dir given and no registry recorded in $LAST_FILE"
    dir="$(cat "$LAST_FILE")"
  fi
}

# Writes $dir/config.yml for port $1.
write_config() {
  cat >"$dir/config.yml" <<CONFIG
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$1
CONFIG
}

start() {
  local record_last=0
  if [[ -z "$dir" ]]; then
    dir="$(mktemp -d /tmp/skiff-registry-XXXXXX)"
    record_last=1
  else
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
  fi
  if [[ -f "$dir/pid" ]] && pid_alive "$(cat "$dir/pid")"; then
    die "a registry already runs from $dir (pid $(cat "$dir/pid"))"
  fi
  mkdir -p "$dir/data"
  local attempt p pid deadline
  for attempt in 1 2 3 4 5; do
    p="${port:-$(pick_port)}"
    write_config "$p"
    # Own session, so it outlives this script and a Ctrl-C in the caller's terminal.
    setsid docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$dir/pid"
    echo "$p" >"$dir/port"
    deadline=$((SECONDS + 15))
    while ((SECONDS < deadline)); do
      if answers "$p"; then
        # Make sure it is ours that answers, not someone else's on a reused port.
        pid_alive "$pid" || break
        ((record_last)) && echo "$dir" >"$LAST_FILE"
        echo "registry.sh: docker-registry pid $pid, storage $dir/data, log $dir/registry.log" >&2
        echo "127.0.0.1:$p"
        return 0
      fi
      pid_alive "$pid" || break
      sleep 0.05
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -f "$dir/pid" "$dir/port"
    if [[ -n "$port" ]]; then
      break  # the caller's port: do not try another one
    fi
    echo "registry.sh: attempt $attempt on port $p failed: $(tail -n 3 "$dir/registry.log")" >&2
  done
  local log
  log="$(tail -n 20 "$dir/registry.log" 2>/dev/null || true)"
  ((record_last)) && rm -rf "$dir"
  die "docker-registry did not come up (log: $log)"
}

status() {
  resolve_dir
  [[ -f "$dir/pid" && -f "$dir/port" ]] || die "no registry in $dir"
  local pid p
  pid="$(cat "$dir/pid")"
  p="$(cat "$dir/port")"
  pid_alive "$pid" || die "registry pid $pid from $dir is not running"
  answers "$p" || die "registry pid $pid on 127.0.0.1:$p does not answer /v2/"
  echo "127.0.0.1:$p"
}

stop() {
  resolve_dir
  [[ -d "$dir" ]] || die "no such directory: $dir"
  # Refuse to delete a directory that does not look like ours.
  [[ -f "$dir/config.yml" ]] || die "$dir has no config.yml: not a registry dir, not removing it"
  if [[ -f "$dir/pid" ]]; then
    local pid i
    pid="$(cat "$dir/pid")"
    if pid_alive "$pid" && grep -q docker-registry "/proc/$pid/cmdline" 2>/dev/null; then
      kill -TERM "$pid"
      for ((i = 0; i < 50; i++)); do
        pid_alive "$pid" || break
        sleep 0.1
      done
      pid_alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -rf "$dir"
  if [[ -f "$LAST_FILE" && "$(cat "$LAST_FILE")" == "$dir" ]]; then
    rm -f "$LAST_FILE"
  fi
  echo "registry.sh: stopped, removed $dir" >&2
}

case "$cmd" in
  start) start ;;
  status) status ;;
  stop) stop ;;
  *) usage ;;
esac
