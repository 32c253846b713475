#!/usr/bin/env bash
# One-time set-up of a Debian machine with Rust: installs what the build, the run command and
# the tests need, and nothing that is already there. Idempotent; safe to re-run.
#
#   sudo scripts/setup.sh          (as root: apt-get needs it)
#
#   Debian packages: cmake (pingora builds zlib-ng with it), postgresql (server binaries for
#   the throwaway clusters), python3-venv, prometheus (promtool, to check metrics output),
#   wrk (the load generator of bench/).
#   PyPI, in <repo>/.venv: scripts/requirements.txt (cfn-lint, checkov, botocore, pytest, moto).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}

missing=()
command -v cmake >/dev/null || missing+=(cmake)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v promtool >/dev/null || missing+=(prometheus)
command -v wrk >/dev/null || missing+=(wrk)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
command -v runuser >/dev/null || missing+=(util-linux)

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing Debian packages: ${missing[*]}; re-run as root (sudo $0)" >&2
        exit 1
    fi
    echo "setup: installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The postgresql package starts a system cluster; the project never uses it.
    if [[ " ${missing[*]} " == *" postgresql "* ]] && command -v pg_ctlcluster >/dev/null; then
        for v in /etc/postgresql/*/main; do
            [ -d "$v" ] && pg_ctlcluster "$(basename "$(dirname "$v")")" main stop 2>/dev/null || true
        done
    fi
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV"
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
    echo "setup: installing PyPI tools into $VENV (scripts/requirements.txt)"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/scripts/requirements.txt"
fi
echo "setup: ready (cmake, PostgreSQL binaries, $VENV)"
