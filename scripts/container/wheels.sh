#!/usr/bin/env bash
# Downloads every wheel the image build needs into DEST (`wheels.sh DEST`), so
# `docker build` can run with no package index: the Dockerfile installs from `wheels/` in its
# context with `--no-index` whenever that folder holds wheels. The set is the runtime
# dependencies in pyproject.toml, the extras the image carries (`otel`, loaded only when tracing is
# configured; `grpc`, loaded only when authz.grpc_listen is set), plus the build backend that turns the
# source into a wheel.
# Run it with the same Python minor version as the image (3.11); PYTHON overrides the interpreter.
set -euo pipefail

[[ $# -eq 1 ]] || {
  echo "usage: $0 DEST" >&2
  exit 2
}
dest=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
python=${PYTHON:-python3}

mapfile -t requirements < <(
  "$python" - "$root/pyproject.toml" <<'EOF'
import sys
import tomllib

with open(sys.argv[1], "rb") as f:
    project = tomllib.load(f)
optional = project["project"]["optional-dependencies"]
extras = optional["otel"] + optional["grpc"]  # the Dockerfile's `authproxy[otel,grpc]`
for line in project["project"]["dependencies"] + extras + project["build-system"]["requires"]:
    print(line)
EOF
)

# pip evaluates dependency markers for the Python running this script, not for the image's: redis needs
# async-timeout below Python 3.11.3 (Debian bookworm's python3 is 3.11.2), which a newer host would skip.
requirements+=("async-timeout>=4.0.3")

mkdir -p "$dest"
"$python" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
  --python-version 3.11 --dest "$dest" "${requirements[@]}"
