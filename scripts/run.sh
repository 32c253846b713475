#!/usr/bin/env bash
# The run command: the whole system locally (PostgreSQL, auth-svc, task-svc + gateway pairs, the
# ALB stand-in on http://127.0.0.1:8080, Prometheus on http://127.0.0.1:9090) until Ctrl-C. Installs what the machine lacks first
# (scripts/setup.sh run), then builds and starts it in the release profile.
#
#   scripts/run.sh [devstack flags]      e.g. scripts/run.sh --data-dir ./data --port 8081
#   scripts/run.sh --help                the flags (docs/local-run.md explains them); a debug
#                                        build of the run command only, nothing started
#   scripts/run.sh --no-build [flags]    the release binaries already in target/release, no cargo
#
# One build: `cargo run --release --bin devstack` selects the whole workspace for feature
# resolution, and devstack's own build of the services does too, so the release dependency
# tree is compiled once (see docs/local-run.md, "One build").
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# --no-build runs the release binaries already built, without cargo: `cargo run` would
# rebuild whatever its records do not match (binaries copied in, a moved checkout).
RELEASE="${CARGO_TARGET_DIR:-$ROOT/target}/release"
NO_BUILD=
for arg in "$@"; do
    [ "$arg" = --no-build ] && NO_BUILD=1
done
if [ -n "$NO_BUILD" ] && [ ! -x "$RELEASE/devstack" ]; then
    echo "run.sh: --no-build, but $RELEASE/devstack is not built: run scripts/run.sh once without --no-build" >&2
    exit 1
fi
# Without Prometheus, the set-up step need not install it. Asking for the flags needs no
# release build: the run command's debug build prints them and exits (with --no-build, the
# release one, and no set-up step).
for arg in "$@"; do
    [ "$arg" = --no-prometheus ] && export SETUP_WITHOUT_PROMETHEUS=1
    if [ "$arg" = --help ] || [ "$arg" = -h ] || [ "$arg" = --version ] || [ "$arg" = -V ]; then
        [ -n "$NO_BUILD" ] && exec "$RELEASE/devstack" "$arg"
        export SETUP_WITHOUT_PROMETHEUS=1
        "$ROOT/scripts/setup.sh" run
        exec cargo run --quiet --bin devstack -- "$arg"
    fi
done
"$ROOT/scripts/setup.sh" run
[ -n "$NO_BUILD" ] && exec "$RELEASE/devstack" "$@"
exec cargo run --release --bin devstack -- "$@"
