#!/usr/bin/env bash
# Runs every test of the project: the Rust workspace (unit, handler, process, gateway and
# end-to-end tests, on real PostgreSQL clusters the tests start themselves), the benchmark
# harness in quick mode, and the offline checks of the ECS deployment. Needs scripts/setup.sh
# to have run once.
#
#   scripts/test.sh                 everything
#   scripts/test.sh -- <filter>     extra arguments go to cargo nextest
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export VENV=${VENV:-$ROOT/.venv}
export MOTO_SERVER=${MOTO_SERVER:-$VENV/bin/moto_server}
[ "${1:-}" = "--" ] && shift

echo "==> cargo nextest run --workspace"
cargo nextest run --workspace --no-fail-fast "$@"

echo "==> bench --quick (the benchmark harness, on the debug binaries just built)"
cargo nextest run --workspace --run-ignored only -E 'package(bench)'

echo "==> ecs/check.sh"
ecs/check.sh
