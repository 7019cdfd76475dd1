#!/usr/bin/env bash
# Installs the non-Python tools the test suite needs into the git-ignored folder given as $1.
# Each step is idempotent so repeated `make test` runs cost nothing.
set -euo pipefail
tools_dir=${1:-.tools}
mkdir -p "$tools_dir/bin"
