#!/usr/bin/env bash
# The README's main job: install dependencies, build, and run mixtape.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
./build/cli/mixtape --help
