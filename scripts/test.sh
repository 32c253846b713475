#!/usr/bin/env bash
# The test command: every test of the project. Installs what the machine lacks first
# (scripts/setup.sh test), then runs the Rust workspace's tests (unit, handler, process,
# gateway and end-to-end tests on real PostgreSQL clusters the tests start themselves; the
# end-to-end suite again in the RS256 and EdDSA signing modes), checks
# that the run command and the bench reuse this one build, runs the benchmark harness in quick
# mode, the offline checks of the ECS deployment, the images and their pod smoke test, and the
# deploy command against local stand-ins (ecs/deploy_test).
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

echo "==> cargo deny: licenses, bans and sources of every dependency (deny.toml)"
cargo deny --log-level error check licenses bans sources

echo "==> cargo nextest run --workspace"
cargo nextest run --workspace --locked --no-fail-fast "$@"

# The end-to-end suite again in each asymmetric signing mode (the run above is HS256, the
# default): the same binaries, only auth-svc's key and the gateways' JWKS differ.
for alg in RS256 EdDSA; do
    echo "==> end-to-end suite with E2E_JWT_ALG=$alg"
    E2E_JWT_ALG=$alg cargo nextest run --workspace --locked --no-fail-fast -E 'package(e2e)'
done

echo "==> one build: the run command's and the bench's builds reuse the test build (devstack/tests/one_build.rs)"
cargo nextest run --workspace --locked --run-ignored only -E 'binary(one_build)'

echo "==> bench --quick (the benchmark harness, on the debug binaries just built)"
cargo nextest run --workspace --locked --run-ignored only -E 'package(bench)'

echo "==> ecs/check.sh (cfn-lint, checkov, hadolint, actionlint, botocore, promtool, invariants)"
ecs/check.sh

# The FROM scratch images of the debug binaries just built (the same files a release image
# carries, only larger), then the pod smoke test: task-svc + gateway in one podman pod,
# Secrets Manager over TLS (moto with a test CA). The release images: ecs/images/images.sh build.
echo "==> images: FROM scratch build of target/debug + pod smoke test (ecs/images/images.sh)"
export TAG=test-$(git rev-parse --short=12 HEAD 2>/dev/null || echo local)
BIN_DIR="$ROOT/target/debug" ecs/images/images.sh build --no-cargo
ecs/images/images.sh smoke

echo "==> deploy: ecs/deploy.sh up, up, status, down against moto_server, docker-registry and the local stack"
"$VENV/bin/python" -m pytest -p no:cacheprovider -s ecs/deploy_test
