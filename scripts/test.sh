#!/usr/bin/env bash
# The test command: every test of the project. Installs what the machine lacks first
# (scripts/setup.sh test), then runs the Rust workspace's tests (unit, handler, process,
# gateway and end-to-end tests on real PostgreSQL clusters the tests start themselves), checks
# that the run command and the bench reuse this one build, runs the benchmark harness in quick
# mode, and the offline checks of the ECS deployment.
#
#   scripts/test.sh                 everything
#   scripts/test.sh -- <filter>     extra arguments go to the workspace's cargo nextest run
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
"$ROOT/scripts/setup.sh" test
export VENV=${VENV:-$ROOT/.venv}
export MOTO_SERVER=${MOTO_SERVER:-$VENV/bin/moto_server}
[ "${1:-}" = "--" ] && shift

echo "==> cargo nextest run --workspace"
cargo nextest run --workspace --locked --no-fail-fast "$@"

echo "==> one build: the run command's and the bench's builds reuse the test build (devstack/tests/one_build.rs)"
cargo nextest run --workspace --locked --run-ignored only -E 'binary(one_build)'

echo "==> bench --quick (the benchmark harness, on the debug binaries just built)"
cargo nextest run --workspace --locked --run-ignored only -E 'package(bench)'

echo "==> ecs/check.sh"
ecs/check.sh
