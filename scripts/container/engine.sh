#!/usr/bin/env bash
# A private Docker engine for the container tests: `engine.sh start|stop STATE_DIR`.
# Everything it owns (data, exec state, pidfile, socket, log) lives under STATE_DIR, so it never
# touches a system daemon. Networking is host-only (no bridge, no iptables): containers run with
# `--network host`. `start` prints the DOCKER_HOST to use and returns once the engine answers.
# Keep STATE_DIR short (e.g. /tmp/apd-XXXX): containerd's sockets live under it and unix socket
# paths are limited to 108 bytes.
set -euo pipefail

usage() {
  echo "usage: $0 start|stop STATE_DIR" >&2
  exit 2
}

[[ $# -eq 2 ]] || usage
action=$1
state=$2
pidfile="$state/dockerd.pid"
socket="$state/docker.sock"
log="$state/dockerd.log"

# The CLI from the same package as dockerd, so client and engine speak the same API version.
docker_cli() {
  local sbin
  sbin=$(dirname "$(command -v dockerd)")
  if [[ -x "$sbin/../bin/docker" ]]; then
    echo "$sbin/../bin/docker"
  else
    command -v docker
  fi
}

# Polls a condition every 0.2 s, up to $1 tries; returns 1 when it never held.
poll() {
  local tries=$1
  shift
  for ((i = 0; i < tries; i++)); do
    if "$@"; then return 0; fi
    sleep 0.2
  done
  return 1
}

engine_answers() {
  "$(docker_cli)" -H "unix://$socket" info >/dev/null 2>&1
}

engine_gone() {
  [[ ! -f "$pidfile" ]] || ! kill -0 "$(cat "$pidfile")" 2>/dev/null
}

start() {
  if [[ $(id -u) -ne 0 ]]; then
    echo "engine.sh: dockerd needs root" >&2
    exit 1
  fi
  command -v dockerd >/dev/null || {
    echo "engine.sh: dockerd not installed (scripts/install-tools.sh installs docker.io)" >&2
    exit 1
  }
  mkdir -p "$state/data" "$state/exec"
  # Should a system containerd be running, dockerd uses it: an own namespace keeps this engine's
  # containers apart from any other engine's.
  local namespace
  # containerd accepts only [A-Za-z0-9] runs joined by single [._-]; a mktemp name may hold "-_" or "__".
  namespace="authproxy-test-$(basename "$state" | tr -c 'A-Za-z0-9\n' 'x')"
  # Layers on a tmpfs: builds write faster and `stop` frees them at once instead of deleting
  # thousands of files. Falls back to the disk when no tmpfs can be mounted.
  mount -t tmpfs -o size=4g,mode=0700 authproxy-engine "$state/data" 2>/dev/null || true
  # setsid: the engine outlives this script and is stopped by pid, never by name.
  setsid dockerd \
    --data-root "$state/data" \
    --exec-root "$state/exec" \
    --pidfile "$pidfile" \
    -H "unix://$socket" \
    --iptables=false --ip6tables=false --bridge=none \
    --containerd-namespace "$namespace" --containerd-plugins-namespace "$namespace-plugins" \
    >"$log" 2>&1 </dev/null &
  if ! poll 300 engine_answers; then
    echo "engine.sh: dockerd did not answer within 60 s; last log lines:" >&2
    tail -n 20 "$log" >&2
    stop
    exit 1
  fi
  echo "unix://$socket"
}

stop() {
  if [[ -f "$pidfile" ]]; then
    local pid
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    if ! poll 150 engine_gone; then
      kill -KILL "$pid" 2>/dev/null || true
      poll 50 engine_gone || true
    fi
  fi
  # A clean shutdown unmounts its layers; anything left mounted under STATE_DIR would block removal.
  if command -v findmnt >/dev/null; then
    findmnt -rn -o TARGET | grep -F "$state/" | sort -r | while read -r target; do
      umount -l "$target" 2>/dev/null || true
    done
  fi
}

case $action in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
