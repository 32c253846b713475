"""Settings that hold under light load and break under real traffic or scale: the gateway's
keep-alive against the ALB idle timeout, the database connection budget against max_connections,
and Cloud Map DNS TTLs against the gateway's re-resolution interval (ecs/README.md, "Limits that
break at scale")."""

import itertools
import tomllib

import pytest

from conftest import REPO, physical
from template_conditions import evaluate  # CloudFormation's condition and rule functions
from test_invariants import ref, of_type
import template_conditions

# The gateway's defaults for keys sidecar.toml does not set (gateway/src/config/file.rs).
GATEWAY_DEFAULTS = {("server", "keepalive_timeout_secs"): 75, ("auth", "resolve_interval_secs"): 5,
                    ("rate_limit", "peers_refresh_secs"): 10}

# Memory of each RDS class in GiB (RDS DB instance class table, "Hardware specifications").
CLASS_MEMORY_GIB = {
    "db.t3.micro": 1, "db.t4g.micro": 1,
    "db.t3.small": 2, "db.t4g.small": 2,
    "db.t3.medium": 4, "db.t4g.medium": 4,
}
# RDS for PostgreSQL's default max_connections is LEAST({DBInstanceClassMemory/9531392}, 5000).
# DBInstanceClassMemory is the class memory minus what RDS keeps for the OS and its own
# processes, which AWS does not publish per class; 72 % of the nominal memory gives the 81 seen on
# 1 GiB classes (1 GiB / 9531392 alone would say 112) and underestimates larger classes, whose
# reserve is a smaller share: the safe side for a budget.
USABLE_MEMORY_SHARE = 0.72
# superuser_reserved_connections (3): slots only real superusers (rdsadmin) may take.
SUPERUSER_RESERVED = 3
# An operator's psql sessions and a one-off migration run from outside the services. (The
# services migrate over a connection of their own pool, so migrations need no extra slot.)
OPERATOR_HEADROOM = 3
# Route 53 multivalue answer routing returns at most 8 healthy records per query.
MULTIVALUE_ANSWER_LIMIT = 8
# Cloud Map TTL ceiling for the gateways' fallback to see a replaced auth-svc task quickly.
MAX_DNS_TTL = 10


def sidecar(section, key):
    values = tomllib.loads((REPO / "sidecar.toml").read_text())
    return int(values.get(section, {}).get(key, GATEWAY_DEFAULTS[(section, key)]))


def max_connections(instance_class):
    memory = CLASS_MEMORY_GIB[instance_class] * 2**30 * USABLE_MEMORY_SHARE
    return min(int(memory // 9531392), 5000)


def test_max_connections_estimate_matches_the_documented_micro_value():
    assert max_connections("db.t3.micro") == 81
    assert max_connections("db.t3.medium") < 4 * 2**30 // 9531392, "never above the formula on nominal memory"


# ----------------------------------------------------------------------------- keep-alive

def test_gateway_keepalive_outlives_the_alb_idle_timeout(resources):
    """The ALB must be the side that closes an idle connection; if the gateway closes first, the
    ALB can send a request into a closing connection and answer 502 (AWS: set the application's
    keep-alive timeout larger than the load balancer's idle timeout)."""
    attrs = {a["Key"]: a["Value"] for a in resources["LoadBalancer"]["Properties"]["LoadBalancerAttributes"]}
    idle = int(attrs["idle_timeout.timeout_seconds"])
    keepalive = sidecar("server", "keepalive_timeout_secs")
    assert keepalive > idle, f"gateway keep-alive {keepalive} s must exceed the ALB idle timeout {idle} s"
    # The ALB target is the gateway in every task-service task, with that sidecar.toml.
    (lb,) = resources["TaskService"]["Properties"]["LoadBalancers"]
    assert lb["ContainerName"] == "gateway"


def test_keepalive_default_matches_the_gateway():
    text = (REPO / "gateway" / "src" / "config" / "file.rs").read_text()
    assert f"DEFAULT_KEEPALIVE_TIMEOUT_SECS: u64 = {GATEWAY_DEFAULTS[('server', 'keepalive_timeout_secs')]};" in text


# ----------------------------------------------------------------------------- connection budget

def accepted(template, params):
    """Whether the template's Rules accept these parameter values (defaults for the others)."""
    params = {**{k: str(v["Default"]) for k, v in template["Parameters"].items() if "Default" in v}, **params}
    for rule in template.get("Rules", {}).values():
        if evaluate(rule.get("RuleCondition", True), params):
            if not all(evaluate(a["Assert"], params) for a in rule["Assertions"]):
                return False
    return True


def pool_key(template, task_definition, container):
    """The DbBudget key a container's DB_MAX_CONNECTIONS comes from."""
    deployed = template_conditions.for_parameters(template)
    for c in deployed["Resources"][task_definition]["Properties"]["ContainerDefinitions"]:
        if c["Name"] == container:
            (value,) = [e["Value"] for e in c["Environment"] if e["Name"] == "DB_MAX_CONNECTIONS"]
            mapping, by, key = value["Fn::FindInMap"]
            assert (mapping, by) == ("DbBudget", {"Ref": "DbInstanceClass"}), value
            return key
    raise AssertionError(f"{container} not in {task_definition}")


def combinations(template):
    params = template["Parameters"]
    return [
        {"DbInstanceClass": cls, "MaxTasksPerService": str(n)}
        for cls, n in itertools.product(params["DbInstanceClass"]["AllowedValues"], params["MaxTasksPerService"]["AllowedValues"])
    ]


def peak_connections(template, cls, max_tasks):
    """Connections when both services run their autoscaling maximum and deploy at once (a
    deployment runs up to MaximumPercent of the desired count), every pool full."""
    budget = template["Mappings"]["DbBudget"][cls]
    services = of_type(template["Resources"], "AWS::ECS::Service")
    overlap = max(s["Properties"]["DeploymentConfiguration"]["MaximumPercent"] for s in services.values()) / 100
    per_task = int(budget[pool_key(template, "AuthTaskDefinition", "auth-service")]) + int(
        budget[pool_key(template, "TaskServiceTaskDefinition", "task-service")]
    )
    return int(max_tasks * overlap) * per_task


def test_every_accepted_combination_fits_max_connections(template):
    for params in combinations(template):
        cls, max_tasks = params["DbInstanceClass"], int(params["MaxTasksPerService"])
        need = peak_connections(template, cls, max_tasks) + SUPERUSER_RESERVED + OPERATOR_HEADROOM
        fits = need <= max_connections(cls)
        assert fits or not accepted(template, params), (
            f"{cls} with {max_tasks} tasks per service needs {need} connections, max_connections is "
            f"~{max_connections(cls)}: shrink DbBudget pools or refuse the pair in Rules"
        )


def test_every_class_is_usable_and_the_rules_are_load_bearing(template):
    combos = combinations(template)
    for cls in template["Parameters"]["DbInstanceClass"]["AllowedValues"]:
        assert cls in CLASS_MEMORY_GIB, f"{cls}: add its memory to CLASS_MEMORY_GIB"
        assert any(accepted(template, c) for c in combos if c["DbInstanceClass"] == cls), cls
    # The default pair deploys; the micro class refuses 8 tasks (it would need 102 connections).
    defaults = {k: str(v["Default"]) for k, v in template["Parameters"].items() if "Default" in v}
    assert accepted(template, defaults)
    assert not accepted(template, {"DbInstanceClass": "db.t3.micro", "MaxTasksPerService": "8"})


def test_task_definitions_take_their_pool_size_from_the_budget(rendered):
    for name, output in (("auth-service.json", "AuthDbMaxConnections"), ("task-service.json", "TaskDbMaxConnections")):
        container = rendered[name]["containerDefinitions"][0]
        env = {e["name"]: e["value"] for e in container["environment"]}
        assert env["DB_MAX_CONNECTIONS"] == "${%s}" % output, name


def test_connections_alarm_sits_between_steady_load_and_the_limit(template, resources):
    threshold = resources["RdsConnectionsAlarm"]["Properties"]["Threshold"]
    assert threshold == {"Fn::FindInMap": ["DbBudget", {"Ref": "DbInstanceClass"}, "ConnectionsAlarm"]}
    for params in combinations(template):
        if not accepted(template, params):
            continue
        cls, max_tasks = params["DbInstanceClass"], int(params["MaxTasksPerService"])
        alarm = int(template["Mappings"]["DbBudget"][cls]["ConnectionsAlarm"])
        steady = peak_connections(template, cls, max_tasks) // 2
        assert steady < alarm < max_connections(cls), (cls, max_tasks, steady, alarm)


def test_dns_discovery_sees_every_task(template):
    """Route 53 answers a multivalue query with at most 8 records, so Prometheus' DNS discovery
    (and the gateways' fallback) see every task only up to 8 tasks per service."""
    for n in template["Parameters"]["MaxTasksPerService"]["AllowedValues"]:
        assert 2 <= int(n) <= MULTIVALUE_ANSWER_LIMIT, n


# ----------------------------------------------------------------------------- DNS

def test_cloud_map_ttls_allow_fast_failover(resources):
    for name, svc in of_type(resources, "AWS::ServiceDiscovery::Service").items():
        dns = svc["Properties"]["DnsConfig"]
        assert dns["RoutingPolicy"] == "MULTIVALUE", name
        for record in dns["DnsRecords"]:
            assert record["TTL"] <= MAX_DNS_TTL, f"{name}: {record['Type']} TTL {record['TTL']} s > {MAX_DNS_TTL} s"
        # ECS marks stopped tasks unhealthy at once; Route 53 then leaves them out.
        assert svc["Properties"]["HealthCheckCustomConfig"] == {"FailureThreshold": 1}, name


def test_gateway_re_resolves_auth_svc_within_its_ttl(resources, containers):
    """A replaced auth-svc task leaves the gateways' address list within TTL + interval; an
    interval longer than the TTL would keep dead addresses past their lifetime in DNS."""
    auth = resources["AuthDiscoveryService"]["Properties"]
    (a_record,) = [r for r in auth["DnsConfig"]["DnsRecords"] if r["Type"] == "A"]
    interval = sidecar("auth", "resolve_interval_secs")
    assert 1 <= interval <= a_record["TTL"], f"resolve_interval_secs {interval} > A record TTL {a_record['TTL']}"
    _, gateway = containers["gateway"]
    url = {e["name"]: e["value"] for e in gateway["environment"]}["AUTH_SERVICE_URL"]
    assert url.startswith(f"http://{auth['Name']}.{physical(resources['Namespace']['Properties']['Name'])}:")


def test_gateways_count_the_task_service_tasks_for_the_rate_limit(resources, containers):
    """[rate_limit] divides the fleet rate by the task-service tasks: the gateways count the A
    records of the task-service Cloud Map name (one per task), re-read within their TTL."""
    task = resources["TaskDiscoveryService"]["Properties"]
    (a_record,) = [r for r in task["DnsConfig"]["DnsRecords"] if r["Type"] == "A"]
    assert task["DnsConfig"]["RoutingPolicy"] == "MULTIVALUE"
    assert 1 <= sidecar("rate_limit", "peers_refresh_secs") <= a_record["TTL"]
    _, gateway = containers["gateway"]
    name = {e["name"]: e["value"] for e in gateway["environment"]}["RATE_LIMIT_PEERS_DNS_NAME"]
    assert name == f"{task['Name']}.{physical(resources['Namespace']['Properties']['Name'])}"


@pytest.mark.parametrize("service,discovery", [("AuthService", "AuthDiscoveryService"), ("TaskService", "TaskDiscoveryService")])
def test_each_service_publishes_an_srv_record_for_its_metrics_port(resources, containers, service, discovery):
    (registry,) = resources[service]["Properties"]["ServiceRegistries"]
    assert ref(registry["RegistryArn"]) == discovery
    types = {r["Type"] for r in resources[discovery]["Properties"]["DnsConfig"]["DnsRecords"]}
    assert "SRV" in types
    _, c = containers[registry["ContainerName"]]
    mapped = {pm["containerPort"] for pm in c["portMappings"]}
    assert registry["ContainerPort"] in mapped
    default = tomllib.loads((REPO / "sidecar.toml").read_text())["server"]["metrics"]  # the gateway's
    metrics_addr = {e["name"]: e["value"] for e in c["environment"]}.get("METRICS_ADDR", default)
    assert metrics_addr.endswith(f":{registry['ContainerPort']}"), "the SRV port is the metrics listener"
    assert not metrics_addr.startswith("127."), "reachable from the scraper"


def test_auth_service_keeps_the_a_records_of_the_fallback(resources):
    records = {r["Type"] for r in resources["AuthDiscoveryService"]["Properties"]["DnsConfig"]["DnsRecords"]}
    assert records == {"A", "SRV"}
    assert resources["AuthDiscoveryService"]["Properties"]["Name"] == "auth-service"
