"""ecs/prometheus against the deployment and the binaries: promtool accepts the config and the
rules and their unit tests pass; every Grafana dashboard expression parses and returns data
from the rules' test series; the metric names those series use are the ones the binaries
expose; and the scrape jobs find what the template publishes in Cloud Map."""

import json
import re
import shutil
import subprocess

import pytest
import yaml

from conftest import ECS_DIR, REPO, physical

PROM = ECS_DIR / "prometheus"
RULE_FILES = sorted((PROM / "rules").glob("*.yml"))
TEST_FILES = sorted((PROM / "tests").glob("*_test.yml"))
SOURCES = ["auth-svc/src", "task-svc/src", "gateway/src", "platform/src"]

# Metrics no source line of ours names: Prometheus' own, and the `prometheus` crate's process
# collector (Linux, feature "process"; the services' tests/metrics.rs assert them at run time).
EXTERNAL = {"up"} | {
    "process_cpu_seconds_total", "process_open_fds", "process_max_fds", "process_virtual_memory_bytes",
    "process_resident_memory_bytes", "process_start_time_seconds", "process_threads",
}
# Metrics another branch adds; the lead checks the name when merging it.
PENDING: dict[str, str] = {}


def promtool(*args, cwd=None):
    if shutil.which("promtool") is None:
        pytest.fail("promtool not found: run scripts/setup.sh (Debian package prometheus)")
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True)


def test_config_is_valid():
    out = promtool("check", "config", str(PROM / "prometheus.yml"))
    assert out.returncode == 0, out.stdout + out.stderr


def test_rules_are_valid_and_every_alert_has_a_runbook():
    out = promtool("check", "rules", *map(str, RULE_FILES))
    assert out.returncode == 0, out.stdout + out.stderr
    alerts = [r for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"] if "alert" in r]
    assert len(alerts) >= 15
    for rule in alerts:
        assert rule["labels"]["severity"] in ("page", "ticket"), rule["alert"]
        assert rule["annotations"]["summary"] and "\n" not in rule["annotations"]["runbook"], rule["alert"]


def test_rule_unit_tests_pass():
    out = promtool("test", "rules", *map(str, TEST_FILES))
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_is_tested_firing_and_not_firing():
    alerts = {r["alert"] for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"] if "alert" in r}
    fired, quiet = set(), set()
    for f in TEST_FILES:
        for case in yaml.safe_load(f.read_text())["tests"]:
            for t in case.get("alert_rule_test", []):
                (fired if t.get("exp_alerts") else quiet).add(t["alertname"])
    assert alerts - fired == set(), "alerts never shown firing"
    # Not firing: an explicit empty expectation, or a firing case whose expectation leaves out
    # series that do not meet the condition (promtool compares the whole list).
    assert len(quiet) >= len(alerts) // 2, f"few explicit non-firing cases: {sorted(alerts - quiet)}"


# ----------------------------------------------------------------------------- the rules' series

def rule_test_series():
    """Every input series of the rule tests, first occurrence wins: {series: values}."""
    series = {}
    for f in TEST_FILES:
        for case in yaml.safe_load(f.read_text())["tests"]:
            for s in case["input_series"]:
                series.setdefault(s["series"], s["values"])
    return series


def metric_names(series):
    return {re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", s).group(0) for s in series}


def exposed_in_source(name):
    """True when a string literal "name" (histograms: without _bucket/_sum/_count) appears in
    the services' or the gateway's source."""
    base = re.sub(r"_(bucket|sum|count)$", "", name)
    literals = {f'"{name}"', f'"{base}"'}
    for d in SOURCES:
        for path in (REPO / d).rglob("*.rs"):
            text = path.read_text()
            if any(lit in text for lit in literals):
                return True
    return False


def test_rules_and_dashboard_use_only_metrics_the_binaries_expose():
    names = metric_names(rule_test_series())
    missing = sorted(n for n in names if n not in EXTERNAL and n not in PENDING and not exposed_in_source(n))
    assert not missing, f"no binary exposes {missing} (names are string literals in {SOURCES})"


def test_name_check_catches_a_wrong_name():
    assert exposed_in_source("gateway_auth_decisions_total")
    assert exposed_in_source("http_request_duration_seconds_bucket")
    assert not exposed_in_source("gateway_auth_decision_total")


# ----------------------------------------------------------------------------- the dashboard

def dashboard_exprs():
    dash = json.loads((PROM / "dashboard.json").read_text())
    out = []
    for p in dash["panels"]:
        for t in p.get("targets", []):
            out.append((p["title"], t["expr"]))
    return out


def run_exprs(tmp_path, exprs):
    """`count(expr) > bool 0` must be {} 1 at 10m for each expr, over the rules' test series
    with the recording rules loaded: fails for an expression that does not parse or returns no
    data (a misspelt metric, label or recording rule)."""
    test = {
        "rule_files": [str(f) for f in RULE_FILES],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [{"series": s, "values": v} for s, v in rule_test_series().items()],
            "promql_expr_test": [
                {"expr": f"count({e}) > bool 0", "eval_time": "10m", "exp_samples": [{"labels": "{}", "value": 1}]}
                for e in exprs
            ],
        }],
    }
    path = tmp_path / "dashboard_test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    return promtool("test", "rules", str(path))


def test_dashboard_is_importable_grafana_json():
    dash = json.loads((PROM / "dashboard.json").read_text())
    assert dash["__inputs"][0]["pluginId"] == "prometheus"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
            assert {"h", "w", "x", "y"} <= set(p["gridPos"]) and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
            assert p["targets"], p["title"]


def test_dashboard_expressions_return_data_from_the_rules_series(tmp_path):
    exprs = [e for _, e in dashboard_exprs()]
    assert len(exprs) >= 20
    out = run_exprs(tmp_path, exprs)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("bad", ["rate(gateway_requests_totl[5m])", "sum by (job) (rate(http_requests_total[5m]", "job:requests:rate1m"])
def test_dashboard_check_fails_on_a_bad_expression(tmp_path, bad):
    assert run_exprs(tmp_path, [bad]).returncode != 0


def test_dashboard_covers_the_issue_signals():
    text = " ".join(e for _, e in dashboard_exprs())
    for signal in ("job:request_error_ratio:rate5m", "job:request_duration_seconds:p99_rate5m", "gateway_auth_decisions",
                   "gateway_keyring_age_seconds", "auth_hash", "auth_login_throttled", "http_unavailable_responses",
                   "db_pool_connections", "process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds",
                   "taskmgmt_build_info"):
        assert signal in text, signal


# ----------------------------------------------------------------------------- discovery

def test_scrape_jobs_follow_the_template(resources):
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    # The names of a stack deployed with the default name (ecs/deploy.sh --stack task-mgmt).
    namespace = physical(resources["Namespace"]["Properties"]["Name"], {"NamePrefix": "task-mgmt"})
    name = {k: resources[k]["Properties"]["Name"] for k in ("AuthDiscoveryService", "TaskDiscoveryService")}
    expected = {
        "gateway": (f"{name['TaskDiscoveryService']}.{namespace}", "/metrics"),
        "task-svc": (f"{name['TaskDiscoveryService']}.{namespace}", "/metrics/task-svc"),
        "auth-svc": (f"{name['AuthDiscoveryService']}.{namespace}", "/metrics"),
    }
    assert set(jobs) == set(expected)
    for job, (dns_name, path) in expected.items():
        (sd,) = jobs[job]["dns_sd_configs"]
        assert sd["type"] == "SRV" and sd["names"] == [dns_name], job
        assert jobs[job].get("metrics_path", "/metrics") == path, job
    # The pass-through path is the gateway's.
    admin = (REPO / "gateway" / "src" / "admin.rs").read_text()
    assert 'TASK_SVC_METRICS_PATH: &str = "/metrics/task-svc"' in admin
    # The rules name these jobs.
    rules = " ".join(f.read_text() for f in RULE_FILES)
    for job in expected:
        assert f'"{job}"' in rules or f"|{job}" in rules or f"{job}|" in rules, job
