#!/usr/bin/env bash
# The demo: sets up and builds skiff, starts a local registry holding the example images
# (the Flask one included), starts skiffd with its ingress, puts two services — `hello`
# (one instance kept warm) and `flask` (the Flask "echo the POST body" app, scaled from zero
# by its first request) — and prints the curl commands that reach them through the ingress.
#
#   scripts/run.sh          start everything (fails if a demo already runs)
#   scripts/run.sh stop     stop the instance, skiffd and the registry
#
# Everything the demo owns lives in ${SKIFF_DEMO_DIR:-/tmp/skiff-demo}: registry/ (the
# registry's storage), skiffd.log, skiffd.pid, registry.address. skiffd itself runs with its
# default socket, state dir, image root and IP pool (/run/skiff/skiffd.sock, /run/skiff,
# /var/lib/skiff/images, 10.88.0.0/16), so plain `skiffctl ps` talks to it; SKIFF_SOCKET,
# SKIFF_STATE_DIR, SKIFF_IMAGE_ROOT and SKIFF_IP_POOL override them (for both commands).
# The ingress listens on ${SKIFF_INGRESS_LISTEN:-127.0.0.1:8080}, /metrics on
# ${SKIFF_ADMIN_LISTEN:-127.0.0.1:9090}.
# The build directory is ${SKIFF_BUILD_DIR:-build}, as for scripts/build.sh;
# SKIFF_SKIP_BUILD=1 skips setup.sh and build.sh (binaries already built there).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${SKIFF_BUILD_DIR:-build}"
DEMO_DIR="${SKIFF_DEMO_DIR:-/tmp/skiff-demo}"
SOCKET="${SKIFF_SOCKET:-/run/skiff/skiffd.sock}"
STATE_DIR="${SKIFF_STATE_DIR:-/run/skiff}"
IMAGE_ROOT="${SKIFF_IMAGE_ROOT:-/var/lib/skiff/images}"
IP_POOL="${SKIFF_IP_POOL:-10.88.0.0/16}"
INGRESS="${SKIFF_INGRESS_LISTEN:-127.0.0.1:8080}"
ADMIN="${SKIFF_ADMIN_LISTEN:-127.0.0.1:9090}"
SKIFFD="$BUILD_DIR/agent/skiffd"
SKIFFCTL="$BUILD_DIR/agent/skiffctl/skiffctl"
SHIM="$BUILD_DIR/shim/skiff-shim"
SERVICES=(hello flask)

say() { echo "run.sh: $*" >&2; }
die() {
  echo "run.sh: error: $*" >&2
  exit 1
}
ctl() { "$SKIFFCTL" --socket "$SOCKET" "$@"; }

# True if the process exists and is not a zombie (an exited process not yet reaped).
pid_alive() {
  [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null &&
    [[ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" != Z ]]
}

skiffd_pid() {
  local pid
  [[ -f "$DEMO_DIR/skiffd.pid" ]] || return 1
  pid="$(cat "$DEMO_DIR/skiffd.pid")"
  pid_alive "$pid" && grep -q skiffd "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}

stop() {
  local pid i
  if pid="$(skiffd_pid)"; then
    if [[ -x "$SKIFFCTL" ]]; then
      local svc
      for svc in "${SERVICES[@]}"; do
        say "deleting service $svc (its instances stop gracefully)"
        ctl service rm "$svc" >/dev/null 2>&1 || true
      done
    fi
    say "stopping skiffd (pid $pid)"
    kill -TERM "$pid"
    for ((i = 0; i < 100; i++)); do
      pid_alive "$pid" || break
      sleep 0.1
    done
    if pid_alive "$pid"; then
      say "skiffd did not exit within 10 s; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$DEMO_DIR/skiffd.pid"
  if [[ -f "$DEMO_DIR/registry/config.yml" ]]; then
    scripts/registry.sh stop --dir "$DEMO_DIR/registry" || true
  fi
  rm -f "$DEMO_DIR/registry.address"
  say "stopped (logs kept in $DEMO_DIR)"
}

# On a failed start: show why, then take down what this run started.
on_failure() {
  local rc=$?
  trap - ERR EXIT
  if ((rc != 0)); then
    if [[ -f "$DEMO_DIR/skiffd.log" ]]; then
      say "last lines of $DEMO_DIR/skiffd.log:"
      tail -n 20 "$DEMO_DIR/skiffd.log" >&2 || true
    fi
    say "start failed (exit $rc); tearing down"
    stop
  fi
  exit "$rc"
}

start() {
  if skiffd_pid >/dev/null; then
    die "a demo is already running (skiffd pid $(skiffd_pid)); run 'scripts/run.sh stop' first"
  fi
  if [[ "${SKIFF_SKIP_BUILD:-0}" == 1 ]]; then
    say "1-2/6 setup and build skipped (SKIFF_SKIP_BUILD=1)"
  else
    say "1/6 setup (Debian packages)"
    scripts/setup.sh
    say "2/6 build ($BUILD_DIR)"
    scripts/build.sh
  fi
  local missing=()
  for b in "$SKIFFD" "$SKIFFCTL" "$SHIM"; do
    [[ -x "$b" ]] || missing+=("$b")
  done
  if ((${#missing[@]})); then
    if [[ "${SKIFF_SKIP_BUILD:-0}" == 1 ]]; then
      die "not built: ${missing[*]} (SKIFF_SKIP_BUILD=1: build first, or check SKIFF_BUILD_DIR)"
    fi
    die "not built: ${missing[*]} (the build finished without these targets: the agent or the" \
      "shim has not landed yet, or its CMake target is disabled)"
  fi
  if [[ -S "$SOCKET" ]] && "$SKIFFCTL" --socket "$SOCKET" node >/dev/null 2>&1; then
    die "another skiffd already serves $SOCKET (not started by this script); stop it first"
  fi

  mkdir -p "$DEMO_DIR"
  trap on_failure EXIT
  say "3/6 local registry"
  [[ -f "$DEMO_DIR/registry/config.yml" ]] && scripts/registry.sh stop --dir "$DEMO_DIR/registry"
  local registry
  registry="$(scripts/registry.sh start --dir "$DEMO_DIR/registry")"
  echo "$registry" >"$DEMO_DIR/registry.address"
  say "4/6 example images -> $registry (flask: debootstrap, minutes the first time, cached)"
  scripts/images/build.sh --registry "$registry" --skip-big --with-flask >/dev/null

  say "5/6 skiffd (log: $DEMO_DIR/skiffd.log; ingress $INGRESS, metrics $ADMIN)"
  setsid "$SKIFFD" --insecure_registry="$registry" --shim="$(realpath "$SHIM")" \
    --socket="$SOCKET" --state_dir="$STATE_DIR" --image_root="$IMAGE_ROOT" --ip_pool="$IP_POOL" \
    --ingress_listen="$INGRESS" --admin_listen="$ADMIN" \
    >"$DEMO_DIR/skiffd.log" 2>&1 </dev/null &
  echo $! >"$DEMO_DIR/skiffd.pid"
  local i
  for ((i = 0; i < 100; i++)); do
    pid_alive "$(cat "$DEMO_DIR/skiffd.pid")" || die "skiffd exited at start-up"
    ctl node >/dev/null 2>&1 && break
    sleep 0.1
  done
  ctl node >/dev/null || die "skiffd does not answer on $SOCKET"

  say "6/6 services: hello (min 1) and flask (min 0, cold-started by its first request)"
  ctl service put hello "$registry/skiff/hello:latest" -m 64Mi --min 1 >/dev/null
  ctl service put flask "$registry/skiff/flask:latest" -m 256Mi --concurrency 8 >/dev/null
  local body echo
  body="$(curl -sS --noproxy '*' --max-time 60 -H 'Host: hello' "http://$INGRESS/")" ||
    die "curl -H 'Host: hello' http://$INGRESS/ failed"
  say "hello answered through the ingress: $body"
  echo="$(curl -sS --noproxy '*' --max-time 120 -H 'Host: flask' \
    --data-binary 'hello from the flask example' "http://$INGRESS/")" ||
    die "curl -H 'Host: flask' -d ... http://$INGRESS/ failed"
  [[ "$echo" == "hello from the flask example" ]] || die "flask echoed '$echo'"
  say "flask echoed through the ingress (after its cold start): $echo"
  trap - EXIT
  echo
  echo "skiff is serving two services through its ingress on $INGRESS. Try:"
  echo
  echo "  curl -H 'Host: hello' http://$INGRESS/"
  echo "  curl -H 'Host: flask' -d 'any body' http://$INGRESS/"
  echo "  curl http://$ADMIN/metrics"
  echo
  local ctl_cmd="$SKIFFCTL"
  [[ "$SOCKET" == /run/skiff/skiffd.sock ]] || ctl_cmd="$SKIFFCTL --socket $SOCKET"
  echo "  $ctl_cmd service stats      # instances, in flight, queued, desired"
  echo "  $ctl_cmd ps                 # instances (flask scales to zero after 60 s idle)"
  echo "  scripts/run.sh stop                # tear it all down"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0" ;;
  *) die "unknown command '$1' (start or stop)" ;;
esac
