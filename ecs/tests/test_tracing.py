"""Issue 22 on the template: the ADOT collector sidecar in both task definitions (its image, its
configuration, essential flags, dependsOn, health check, the memory budget of the extra
container within the task size), exactly the X-Ray write permissions on the task roles, the
services' OTLP settings, and Tracing=false removing all of it.
"""

import re

import pytest
import yaml

from conftest import COLLECTOR, ECS_DIR, SIGNING_MODES, deployed_template, rendered_for, service_containers
from test_invariants import BINARIES, env, listify, of_type, policy_statements
import taskdefs

# The two actions the awsxray exporter calls: PutTraceSegments for the segments,
# PutTelemetryRecords for its own counters (exporter config telemetry.enabled).
XRAY_WRITE = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
TASK_ROLES = {"AuthServiceTaskRole", "TaskServiceTaskRole"}
COLLECTOR_REPOSITORY = "${NamePrefix}-public/aws-observability/aws-otel-collector"


def config_of(collector):
    return yaml.safe_load(env(collector)["AOT_CONFIG_CONTENT"])


def xray_grants(resources):
    """Role -> the X-Ray actions its policies allow."""
    out = {}
    for name, res in of_type(resources, "AWS::IAM::Role").items():
        actions = {a for st in policy_statements(res) for a in listify(st["Action"]) if a.startswith("xray:")}
        if actions:
            out[name] = actions
    return out


# ----------------------------------------------------------------------------- the sidecar

def test_one_collector_per_task_definition(rendered, collectors):
    assert set(collectors) == set(taskdefs.TASK_DEFINITIONS.values())
    for name, td in rendered.items():
        names = [c["name"] for c in td["containerDefinitions"]]
        assert names.count(COLLECTOR) == 1, name


def test_collector_image_is_pinned_and_comes_through_the_pull_through_cache(collectors, bootstrap, deployed):
    images = {c["image"] for _, c in collectors.values()}
    (image,) = images  # the same image and tag in both tasks
    repo, tag = image.rsplit(":", 1)
    assert re.fullmatch(r"v\d+\.\d+\.\d+", tag), f"{tag}: pin a released version, never latest"
    assert repo == "${AWS_ACCOUNT_ID}.dkr.ecr.${AWS_REGION}.amazonaws.com/" + COLLECTOR_REPOSITORY
    res = bootstrap["Resources"]
    rule = res["PublicImagesCacheRule"]["Properties"]
    assert rule == {"EcrRepositoryPrefix": {"Fn::Sub": "${NamePrefix}-public"}, "UpstreamRegistryUrl": "public.ecr.aws"}
    # public.ecr.aws/aws-observability/aws-otel-collector, cached under the rule's prefix, in a
    # repository the bootstrap stack owns (deleted by down).
    assert res["CollectorRepository"]["Properties"]["RepositoryName"] == {"Fn::Sub": COLLECTOR_REPOSITORY}
    # The execution role pulls it and may import it from upstream, and nothing more.
    statements = deployed["Resources"]["ExecutionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    (cache,) = [s for s in statements if s.get("Sid") == "CollectorThroughCache"]
    assert cache["Action"] == "ecr:BatchImportUpstreamImage"
    assert cache["Resource"]["Fn::Sub"].endswith(":repository/" + COLLECTOR_REPOSITORY)


def test_collector_is_not_essential_and_the_services_are(rendered):
    """A collector crash or OOM must not stop the task: the API keeps serving and only traces
    are lost."""
    for name, td in rendered.items():
        for c in td["containerDefinitions"]:
            assert c["essential"] is (c["name"] != COLLECTOR), f"{name}: {c['name']}"


def test_services_start_after_the_collector_and_stop_before_it(rendered):
    """dependsOn START: the services start once the collector's container has started (its
    receivers are up within a second) and ECS stops them before it, so it can flush their last
    spans. Never HEALTHY: an essential container must not wait on a non-essential one, or a
    broken collector would keep the API from starting."""
    for name, td in rendered.items():
        by_name = {c["name"]: c for c in td["containerDefinitions"]}
        for c in td["containerDefinitions"]:
            for dep in c.get("dependsOn", []):
                target = by_name[dep["containerName"]]
                if c["essential"] and not target["essential"]:
                    assert dep["condition"] == "START", f"{name}: {c['name']} waits for {dep['condition']} of a non-essential container"
        # Every service container starts after the collector, directly or through another.
        def after_collector(c, seen=()):
            deps = [d["containerName"] for d in c.get("dependsOn", [])]
            return COLLECTOR in deps or any(after_collector(by_name[d], seen + (c["name"],)) for d in deps if d not in seen)
        for c in td["containerDefinitions"]:
            if c["name"] != COLLECTOR:
                assert after_collector(c), f"{name}: {c['name']} may start before the collector"
    gateway_deps = {d["containerName"]: d["condition"] for d in rendered["task-service.json"]["containerDefinitions"][1]["dependsOn"]}
    assert gateway_deps == {"task-service": "HEALTHY"}


def test_collector_configuration(collectors):
    """OTLP in on loopback only (gRPC and HTTP), a memory limiter, batches, out to X-Ray; the
    health check the image's /healthcheck asks; the same configuration in both tasks."""
    configs = [config_of(c) for _, c in collectors.values()]
    assert configs[0] == configs[1]
    config = configs[0]
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "127.0.0.1:4317" and protocols["http"]["endpoint"] == "127.0.0.1:4318"
    (pipeline,) = config["service"]["pipelines"].values()
    assert pipeline["receivers"] == ["otlp"] and pipeline["exporters"] == ["awsxray"]
    processors = pipeline["processors"]
    assert processors[0] == "memory_limiter", "the limiter first, so it can refuse data before anything buffers it"
    assert any(p.split("/")[0] == "batch" for p in processors)
    assert set(processors) <= set(config["processors"])
    assert config["exporters"]["awsxray"]["telemetry"] == {"enabled": True}, "PutTelemetryRecords is granted for this"
    assert "awsproxy" not in config.get("extensions", {}), "no remote sampling: no sampling reads are granted"
    assert config["extensions"]["health_check"]["endpoint"] == "127.0.0.1:13133"
    assert config["service"]["extensions"] == ["health_check"]
    for _, c in collectors.values():
        assert c["healthCheck"]["command"] == ["CMD", "/healthcheck"]  # the image's checker, 127.0.0.1:13133
        # It keeps below its hard limit itself (memory_limiter and the Go runtime's soft limit).
        assert config["processors"]["memory_limiter"]["limit_mib"] < c["memory"]
        assert int(env(c)["GOMEMLIMIT"].removesuffix("MiB")) < c["memory"]


def test_collector_is_hardened(collectors):
    for name, (td, c) in collectors.items():
        assert c["user"].split(":")[0] not in ("0", "root"), name
        assert c["readonlyRootFilesystem"] is True and not c.get("privileged"), name
        assert c["linuxParameters"] == {"initProcessEnabled": True, "capabilities": {"drop": ["ALL"]}}, name
        assert not c.get("portMappings"), f"{name}: the collector listens on loopback only"
        log = c["logConfiguration"]["options"]
        service = [x for x in td["containerDefinitions"] if x["essential"]][0]
        assert log["awslogs-group"] == service["logConfiguration"]["options"]["awslogs-group"], name
        assert log["mode"] == "non-blocking" and log["awslogs-stream-prefix"] == "otel", name
        assert env(c)["TRACE_LOG_GROUP"] == log["awslogs-group"], "X-Ray links the trace to this log group"


def test_services_export_to_the_collector(containers, collectors):
    grpc = config_of(next(iter(collectors.values()))[1])["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    for name, (_, c) in containers.items():
        e = env(c)
        assert e["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://{grpc}", name
        assert e["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc", name
        assert e["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio", name
        assert e["OTEL_TRACES_SAMPLER_ARG"] == "${TraceSampleRatio}", name
        assert e["OTEL_SERVICE_NAME"] == BINARIES[name], name


@pytest.mark.parametrize("tracing", ["true", "false"])
def test_memory_budget_fits_the_task(tracing):
    """Every container has a memory reservation; the reservations fit the task's memory, and so
    do the services' reservations plus every non-essential container's hard limit (a collector
    at its limit cannot push the services below what ECS set aside for them)."""
    for name, td in rendered_for({"Tracing": tracing}).items():
        task = int(td["memory"])
        reserved = 0
        worst = 0
        for c in td["containerDefinitions"]:
            reservation = c.get("memoryReservation", c.get("memory"))
            assert reservation, f"{name}: {c['name']} reserves no memory"
            reserved += reservation
            if c["essential"]:
                worst += reservation
            else:
                assert c.get("memory"), f"{name}: non-essential {c['name']} needs a hard limit"
                assert c["memoryReservation"] <= c["memory"]
                worst += c["memory"]
        assert reserved <= task, f"{name}: reservations {reserved} MiB > task {task} MiB"
        assert worst <= task, f"{name}: services + collector limit {worst} MiB > task {task} MiB"


# ----------------------------------------------------------------------------- IAM

def test_task_roles_get_exactly_the_xray_writes(deployed):
    grants = xray_grants(deployed["Resources"])
    assert grants == {role: XRAY_WRITE for role in TASK_ROLES}
    for role in TASK_ROLES:
        (st,) = [st for st in policy_statements(deployed["Resources"][role]) if any(a.startswith("xray:") for a in listify(st["Action"]))]
        assert st["Effect"] == "Allow" and st["Resource"] == "*" and "Condition" not in st


@pytest.mark.parametrize("mode", sorted(SIGNING_MODES))
def test_tracing_off_removes_the_sidecar_its_permissions_and_the_export(mode):
    params = {**SIGNING_MODES[mode], "Tracing": "false"}
    template = deployed_template(params)
    assert xray_grants(template["Resources"]) == {}
    pulls = [s for s in template["Resources"]["ExecutionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]]
    assert "aws-otel-collector" not in str(pulls)
    rendered = rendered_for(params)
    for name, td in rendered.items():
        assert COLLECTOR not in [c["name"] for c in td["containerDefinitions"]], name
        for c in td["containerDefinitions"]:
            assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in env(c), c["name"]
            assert all(d["containerName"] != COLLECTOR for d in c.get("dependsOn", [])), c["name"]
        assert taskdefs.validate_params(td) == [], name
    assert set(service_containers(rendered)) == set(BINARIES)


@pytest.mark.parametrize("mode", sorted(SIGNING_MODES))
def test_every_mode_renders_valid_task_definitions(mode):
    for name, td in rendered_for(SIGNING_MODES[mode]).items():
        assert taskdefs.validate_params(td) == [], f"{mode} {name}"


def test_sampling_ratio_is_a_parameter(template):
    p = template["Parameters"]["TraceSampleRatio"]
    assert p["Default"] == "0.05"
    for good in ("0", "0.05", "0.5", "1", "1.0"):
        assert re.fullmatch(p["AllowedPattern"], good), good
    for bad in ("5%", "1.5", "-0.1", "", "0.05; rm"):
        assert not re.fullmatch(p["AllowedPattern"], bad), bad
    assert template["Parameters"]["Tracing"]["Default"] == "true"
    deploy = (ECS_DIR / "deploy.sh").read_text()
    assert '"Tracing=$TRACING_PARAM"' in deploy
