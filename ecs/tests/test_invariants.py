"""Invariants of the deployment that cfn-lint and checkov do not check.

They read the CloudFormation template and the task definitions rendered from it, and, for the
gateway's shutdown grace, the repository's sidecar.toml.
"""

import fnmatch
import json
import re
import tomllib

import pytest

from conftest import ECS_DIR, REPO, deployed_template, physical
import taskdefs

# The services' ports, as the binaries use them (see ecs/README.md).
AUTH_PORT = 3000
GATEWAY_PORT = 3000
GATEWAY_METRICS_PORT = 9100
AUTH_METRICS_PORT = 9101
TASK_SVC_PORT = 3001
TASK_SVC_METRICS_PORT = 9102

# Binaries and the containers that run them.
BINARIES = {"auth-service": "auth-svc", "task-service": "task-svc", "gateway": "gateway"}

# The one intended exception to "only the execution role reads secrets" (HS256, the default):
# auth-svc and the gateway re-read the JWT secret themselves (AWSCURRENT + AWSPREVIOUS) so a
# rotation reaches running tasks. RS256/EdDSA: test_signing_modes.py.
RUNTIME_SECRET_READERS = {("TaskServiceTaskRole", "JwtSecret"), ("AuthServiceTaskRole", "JwtSecret")}

# Actions that take no resource but "*" (the Service Authorization Reference lists no resource
# types for them): the registry login, and the collector sidecars' X-Ray writes.
STAR_RESOURCE_ACTIONS = [["ecr:GetAuthorizationToken"], ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]]

# Gateway shutdown grace when sidecar.toml does not say: the gateway's own defaults (15 + 5).
DEFAULT_GATEWAY_GRACE = {"grace_period_secs": 15, "graceful_shutdown_timeout_secs": 5}
FARGATE_MAX_STOP_TIMEOUT = 120


def ref(value):
    """The logical id of {"Ref": X} or {"Fn::GetAtt": [X, ...]}, else None."""
    if isinstance(value, dict) and len(value) == 1:
        (key, arg), = value.items()
        if key == "Ref":
            return arg
        if key == "Fn::GetAtt":
            return (arg.split(".")[0] if isinstance(arg, str) else arg[0])
    return None


def of_type(resources, type_name):
    return {k: v for k, v in resources.items() if v["Type"] == type_name}


def env(container):
    return {e["name"]: e["value"] for e in container.get("environment", [])}


def gateway_grace_secs():
    """Total shutdown grace of the gateway: [shutdown] grace_period_secs +
    graceful_shutdown_timeout_secs in sidecar.toml (the gateway's defaults for missing keys)."""
    path = REPO / "sidecar.toml"
    values = dict(DEFAULT_GATEWAY_GRACE)
    if path.exists():
        shutdown = tomllib.loads(path.read_text()).get("shutdown", {})
        for key in values:
            if key in shutdown:
                values[key] = int(shutdown[key])
    return sum(values.values())


# ----------------------------------------------------------------------------- the template itself

def test_templates_fit_how_deploy_sh_sends_them():
    """CloudFormation takes 51,200 bytes inline (--template-body) and 1 MB from S3
    (--template-url). ecs/deploy.sh sends the main template through S3 and the two small ones
    inline."""
    deploy = (ECS_DIR / "deploy.sh").read_text()
    assert 'deploy_stack "$STACK" --template-url "$url"' in deploy
    assert (ECS_DIR / "cloudformation" / "task-management.yaml").stat().st_size <= 1_000_000
    for name in ("bootstrap.yaml", "network.yaml"):
        assert f'--template-body "file://$TEMPLATE_DIR/{name}"' in deploy
        assert (ECS_DIR / "cloudformation" / name).stat().st_size <= 51_200, name


def test_committed_task_definitions_match_the_template(rendered):
    for name, body in rendered.items():
        committed = json.loads((ECS_DIR / "taskdefs" / name).read_text())
        assert committed == body, f"ecs/taskdefs/{name} is stale: run python3 ecs/taskdefs.py render"


def test_placeholders_are_parameters_or_stack_outputs(template):
    known = set(template["Parameters"]) | set(template["Outputs"]) | {"AWS_REGION", "AWS_ACCOUNT_ID"}
    for name, text in taskdefs.render().items():
        unknown = set(taskdefs.PLACEHOLDER.findall(text)) - known
        assert not unknown, f"{name}: placeholders {unknown} cannot be filled"


@pytest.mark.parametrize("name", sorted(taskdefs.TASK_DEFINITIONS.values()))
def test_task_definitions_are_valid_botocore_input(name):
    params = json.loads((ECS_DIR / "taskdefs" / name).read_text())
    assert taskdefs.validate_params(params) == []


def test_botocore_validation_catches_mistakes(rendered):
    bad = json.loads(json.dumps(rendered["task-service.json"]))
    bad["networkMode"] = "overlay"  # not an enum value
    bad["containerDefinitions"][0]["stopTimeout"] = "30"  # wrong type
    bad["containerDefinitions"][1]["dependsOn"][0]["condition"] = "READY"
    del bad["family"]  # required
    errors = "\n".join(taskdefs.validate_params(bad))
    for expected in ("networkMode", "stopTimeout", "condition", "family"):
        assert expected in errors, f"{expected} not reported in:\n{errors}"


def test_every_skipped_check_has_a_reason(resources):
    for name, res in resources.items():
        meta = res.get("Metadata", {})
        for skip in meta.get("checkov", {}).get("skip", []):
            assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), (name, skip)
            assert len(skip.get("comment", "")) > 20, f"{name}: checkov skip {skip['id']} needs a reason"
        ignored = meta.get("cfn-lint", {}).get("config", {}).get("ignore_checks", [])
        if ignored:
            text = (ECS_DIR / "cloudformation" / "task-management.yaml").read_text()
            block = text.split(f"\n  {name}:\n", 1)[1].split("ignore_checks", 1)[0]
            for rule in ignored:
                assert f"# {rule}:" in block, f"{name}: cfn-lint ignore of {rule} needs a '# {rule}: reason' comment"


# ----------------------------------------------------------------------------- containers

def test_depends_on_targets_exist_and_have_health_checks(rendered):
    for name, td in rendered.items():
        by_name = {c["name"]: c for c in td["containerDefinitions"]}
        for c in td["containerDefinitions"]:
            for dep in c.get("dependsOn", []):
                target = by_name.get(dep["containerName"])
                assert target is not None, f"{name}: {c['name']} depends on missing {dep['containerName']}"
                assert target is not c, f"{name}: {c['name']} depends on itself"
                assert "healthCheck" in target, f"{name}: {dep['containerName']} has no health check"
                if dep["condition"] == "HEALTHY":
                    assert target["healthCheck"]["command"], f"{name}: empty health check"


def test_gateway_starts_after_and_stops_before_task_svc(containers):
    td_gw, gateway = containers["gateway"]
    td_task, _ = containers["task-service"]
    assert td_gw is td_task, "gateway and task-svc must share one task (awsvpc localhost)"
    assert td_gw["networkMode"] == "awsvpc"
    assert {"containerName": "task-service", "condition": "HEALTHY"} in gateway["dependsOn"]


def test_stop_timeouts_exceed_the_gateway_grace(containers):
    grace = gateway_grace_secs()
    for name, (_, c) in containers.items():
        stop = c.get("stopTimeout")
        assert stop is not None, f"{name}: stopTimeout not set (ECS default 30 s)"
        assert grace < stop <= FARGATE_MAX_STOP_TIMEOUT, (
            f"{name}: stopTimeout {stop} must exceed the gateway's shutdown grace ({grace} s, sidecar.toml) "
            f"and stay within Fargate's {FARGATE_MAX_STOP_TIMEOUT} s"
        )


def test_service_grace_is_below_its_stop_timeout(containers):
    for name in ("auth-service", "task-service"):
        _, c = containers[name]
        grace = int(env(c).get("SHUTDOWN_GRACE_SECS", "20"))
        assert grace < c["stopTimeout"], f"{name}: SHUTDOWN_GRACE_SECS {grace} >= stopTimeout"


def test_containers_are_hardened(containers):
    for name, (td, c) in containers.items():
        assert c.get("user") and c["user"].split(":")[0] not in ("0", "root"), f"{name} runs as root"
        assert c.get("readonlyRootFilesystem") is True, f"{name}: root filesystem writable"
        assert c.get("linuxParameters", {}).get("initProcessEnabled") is True, f"{name}: no init process"
        assert c["linuxParameters"]["capabilities"]["drop"] == ["ALL"], name
        assert not c.get("privileged"), name
        # Health checks run the binary's own subcommand: exec form, no shell in the image.
        assert c["healthCheck"]["command"] == ["CMD", f"/usr/local/bin/{BINARIES[name]}", "healthcheck"], name
        log = c["logConfiguration"]
        assert log["logDriver"] == "awslogs", name
        assert log["options"].get("mode") in ("blocking", "non-blocking"), f"{name}: awslogs mode not explicit"
        assert log["options"]["awslogs-group"].startswith("/ecs/"), name
        assert env(c).get("LOG_FORMAT") == "json", name
        # Writable paths are explicit volumes only.
        volumes = {v["name"] for v in td.get("volumes", [])}
        for m in c.get("mountPoints", []):
            assert m["sourceVolume"] in volumes, f"{name}: mount of unknown volume {m['sourceVolume']}"


def test_task_svc_is_reachable_only_on_loopback(containers):
    _, task = containers["task-service"]
    e = env(task)
    assert e["BIND_ADDR"] == "127.0.0.1"
    assert int(e["PORT"]) == TASK_SVC_PORT
    assert e["METRICS_ADDR"].startswith("127.0.0.1:")
    assert not task.get("portMappings"), "task-svc must not map any port"
    for name, (_, c) in containers.items():
        ports = {p["containerPort"] for p in c.get("portMappings", [])}
        assert TASK_SVC_PORT not in ports and TASK_SVC_METRICS_PORT not in ports, name


def test_gateway_configuration(containers, resources):
    _, gw = containers["gateway"]
    e = env(gw)
    assert e["SIDECAR_CONFIG"] == "/etc/gateway/sidecar.toml"
    namespace = physical(resources["Namespace"]["Properties"]["Name"])
    discovery = resources["AuthDiscoveryService"]["Properties"]["Name"]
    assert e["AUTH_SERVICE_URL"] == f"http://{discovery}.{namespace}:{AUTH_PORT}"
    assert e["JWT_SECRET_ARN"] == "${JwtSecretArn}"
    # The gateway refuses JWT_SECRET together with JWT_SECRET_ARN.
    names = set(e) | {s["name"] for s in gw.get("secrets", [])}
    assert "JWT_SECRET" not in names
    assert {p["containerPort"] for p in gw["portMappings"]} == {GATEWAY_PORT, GATEWAY_METRICS_PORT}
    # Its only writable path is the /tmp volume.
    assert [m["containerPath"] for m in gw["mountPoints"]] == ["/tmp"]


def test_auth_svc_configuration(containers):
    _, auth = containers["auth-service"]
    e = env(auth)
    assert e["BIND_ADDR"] == "0.0.0.0" and int(e["PORT"]) == AUTH_PORT
    assert e["DB_SSLMODE"] == "require"
    secrets = {s["name"] for s in auth["secrets"]}
    assert {"DB_HOST", "DB_NAME", "DB_USER", "DB_PASSWORD", "JWT_EXPIRATION"} <= secrets
    # The keyring is read at run time so a rotation needs no redeploy; auth-svc refuses
    # JWT_SECRET together with JWT_SECRET_ARN.
    assert e["JWT_SECRET_ARN"] == "${JwtSecretArn}"
    assert "JWT_SECRET" not in secrets | set(e)


def test_db_settings_match_the_instance(containers, resources):
    port = resources["Database"]["Properties"]["Port"]
    for name in ("auth-service", "task-service"):
        _, c = containers[name]
        e = env(c)
        assert e["DB_PORT"] == port, f"{name}: DB_PORT {e['DB_PORT']} but the instance listens on {port}"
        assert e["DB_SSLMODE"] == "require", "rds.force_ssl=1 refuses plain connections"
        injected = {s["name"] for s in c["secrets"]}
        assert {"DB_HOST", "DB_NAME", "DB_USER", "DB_PASSWORD"} <= injected, name
        assert not injected & set(e), f"{name}: set both as environment and secret"
    assert resources["DbParameterGroup"]["Properties"]["Parameters"]["rds.force_ssl"] == "1"


# ----------------------------------------------------------------------------- secrets and IAM

def secret_refs(rendered, template):
    """(container, env name, secret logical id, json key) for every injected secret."""
    by_output = {f"${{{k}}}": ref(v["Value"]) for k, v in template["Outputs"].items()}
    out = []
    for td in rendered.values():
        for c in td["containerDefinitions"]:
            for s in c.get("secrets", []):
                m = re.fullmatch(r"(\$\{\w+\}):([^:]*):([^:]*):([^:]*)", s["valueFrom"])
                assert m, f"{c['name']}: {s['valueFrom']} is not <arn>:<json-key>:<stage>:<version>"
                out.append((c["name"], s["name"], by_output.get(m.group(1)), m.group(2)))
    return out


def secret_keys(resources, logical_id):
    """JSON keys the secret will hold: its template, the generated key, and for a secret attached
    to an RDS instance the keys the attachment writes."""
    props = resources[logical_id]["Properties"]
    gen = props["GenerateSecretString"]
    keys = set(json.loads(gen["SecretStringTemplate"])) | {gen["GenerateStringKey"]}
    for res in of_type(resources, "AWS::SecretsManager::SecretTargetAttachment").values():
        if ref(res["Properties"]["SecretId"]) == logical_id:
            keys |= {"host", "port", "engine", "dbInstanceIdentifier"}
    return keys


def test_every_injected_secret_exists_with_its_key(rendered, template, resources):
    refs = secret_refs(rendered, template)
    assert refs
    for container, name, secret, key in refs:
        assert secret in resources and resources[secret]["Type"] == "AWS::SecretsManager::Secret", (
            f"{container}.{name} references an unknown secret"
        )
        assert key in secret_keys(resources, secret), f"{container}.{name}: secret {secret} has no key {key!r}"


def test_secret_shapes(resources):
    db = resources["DbSecret"]["Properties"]["GenerateSecretString"]
    assert secret_keys(resources, "DbSecret") >= {"username", "password", "engine", "host", "port", "dbname"}
    assert db["GenerateStringKey"] == "password" and db["PasswordLength"] >= 16
    jwt = resources["JwtSecret"]["Properties"]["GenerateSecretString"]
    assert jwt["GenerateStringKey"] == "secret"
    assert json.loads(jwt["SecretStringTemplate"]) == {"expiration": "3600"}
    assert jwt["PasswordLength"] >= 32, "services refuse JWT secrets shorter than 32 bytes"
    # RDS takes its credentials from the generated secret, never a literal.
    rds = resources["Database"]["Properties"]
    for prop in ("MasterUsername", "MasterUserPassword"):
        assert "resolve:secretsmanager" in rds[prop]["Fn::Sub"], prop


def policy_statements(resource):
    for policy in resource.get("Properties", {}).get("Policies", []):
        for st in policy["PolicyDocument"]["Statement"]:
            yield st


def listify(v):
    return v if isinstance(v, list) else [v]


def secret_grants(resources, parameters=()):
    """(role, secret) for every secretsmanager permission of a deployed template (conditions
    evaluated): the secret is a resource's logical id, or the name of a parameter holding an ARN
    (JwtSigningKeySecretArn)."""
    grants = set()
    for name, res in resources.items():
        if res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            pytest.fail(f"{name}: standalone policies are not expected; keep permissions inline on the roles")
        if res["Type"] != "AWS::IAM::Role":
            continue
        assert not res["Properties"].get("ManagedPolicyArns"), f"{name}: managed policies grant more than the code uses"
        for st in policy_statements(res):
            actions = listify(st["Action"])
            if not any(a.lower().startswith("secretsmanager:") or a == "*" for a in actions):
                continue
            assert st["Effect"] == "Allow"
            assert actions == ["secretsmanager:GetSecretValue"], f"{name}: {actions}"
            for r in listify(st["Resource"]):
                target = ref(r)
                assert target in resources or target in parameters, f"{name}: secret permission on {r!r}, not an exact secret ARN"
                grants.add((name, target))
    return grants


def test_secrets_are_readable_by_the_execution_role_only(rendered, template, deployed):
    injected = {secret for _, _, secret, _ in secret_refs(rendered, template)}
    exec_roles = {ref({"Fn::GetAtt": td["executionRoleArn"].strip("${}").removesuffix("Arn")}) for td in rendered.values()}
    assert exec_roles == {"ExecutionRole"}
    grants = secret_grants(deployed["Resources"], deployed["Parameters"])
    assert {s for r, s in grants if r == "ExecutionRole"} == injected, "execution role must read exactly the injected secrets"
    others = {g for g in grants if g[0] != "ExecutionRole"}
    assert others == RUNTIME_SECRET_READERS, f"unexpected secret readers: {others - RUNTIME_SECRET_READERS}"
    # The exceptions are the task roles that read the JWT keyring at run time (the gateway and
    # auth-svc), and both are told that secret's ARN.
    assert rendered["task-service.json"]["taskRoleArn"] == "${TaskServiceTaskRoleArn}"
    assert rendered["auth-service.json"]["taskRoleArn"] == "${AuthServiceTaskRoleArn}"


def test_iam_has_no_wildcards_beyond_ecr_token_and_xray_writes():
    for params in ({"Tracing": "true"}, {"Tracing": "false", "JwtAlgorithm": "RS256", "JwtSigningKeySecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:k-AbCdEf"}):
        resources = deployed_template(params)["Resources"]
        for name, res in of_type(resources, "AWS::IAM::Role").items():
            for st in policy_statements(res):
                actions = listify(st["Action"])
                assert not any("*" in a for a in actions), f"{name}: wildcard action {actions}"
                if "*" in listify(st["Resource"]):
                    assert actions in STAR_RESOURCE_ACTIONS, f"{name}: {actions} on Resource *"
        principal = res["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
        assert principal == {"Service": "ecs-tasks.amazonaws.com"}, name


# ----------------------------------------------------------------------------- network

def ingress_rules(resources):
    """(group, protocol, from, to, source) for every ingress rule, inline or standalone."""
    rules = []
    for name, res in of_type(resources, "AWS::EC2::SecurityGroup").items():
        for r in res["Properties"].get("SecurityGroupIngress", []):
            rules.append((name, r))
    for res in of_type(resources, "AWS::EC2::SecurityGroupIngress").values():
        rules.append((ref(res["Properties"]["GroupId"]), res["Properties"]))
    out = []
    for group, r in rules:
        source = ref(r.get("SourceSecurityGroupId")) or r.get("CidrIp") or r.get("CidrIpv6") or r.get("SourcePrefixListId")
        out.append((group, str(r["IpProtocol"]), r.get("FromPort"), r.get("ToPort"), source))
    return out


def covers(rule, port):
    _, proto, lo, hi, _ = rule
    return proto in ("-1", "all") or (proto in ("tcp", "6") and lo <= port <= hi)


def test_no_security_group_exposes_task_svc(resources):
    for rule in ingress_rules(resources):
        for port in (TASK_SVC_PORT, TASK_SVC_METRICS_PORT):
            assert not covers(rule, port), f"{rule} exposes task-svc port {port}"


def test_ingress_is_least_privilege(resources):
    assert sorted(ingress_rules(resources), key=str) == sorted([
        ("AlbSecurityGroup", "tcp", 80, 80, "0.0.0.0/0"),
        ("AlbSecurityGroup", "tcp", 443, 443, "0.0.0.0/0"),
        ("AuthSecurityGroup", "tcp", AUTH_PORT, AUTH_PORT, "AlbSecurityGroup"),
        ("AuthSecurityGroup", "tcp", AUTH_PORT, AUTH_PORT, "TaskSecurityGroup"),
        ("AuthSecurityGroup", "tcp", AUTH_METRICS_PORT, AUTH_METRICS_PORT, "MonitoringSourceSecurityGroupId"),
        ("TaskSecurityGroup", "tcp", GATEWAY_PORT, GATEWAY_PORT, "AlbSecurityGroup"),
        ("TaskSecurityGroup", "tcp", GATEWAY_METRICS_PORT, GATEWAY_METRICS_PORT, "MonitoringSourceSecurityGroupId"),
        ("RdsSecurityGroup", "tcp", 5432, 5432, "AuthSecurityGroup"),
        ("RdsSecurityGroup", "tcp", 5432, 5432, "TaskSecurityGroup"),
        # With VPC endpoints (network.yaml Egress=endpoints): their group, from the task groups.
        ("EndpointSecurityGroupId", "tcp", 443, 443, "AuthSecurityGroup"),
        ("EndpointSecurityGroupId", "tcp", 443, 443, "TaskSecurityGroup"),
    ], key=str)
    for rule in ingress_rules(resources):
        if rule[4] in ("0.0.0.0/0", "::/0"):
            assert rule[0] == "AlbSecurityGroup", f"{rule} open to the internet"


def test_every_security_group_limits_egress(resources):
    for name, res in of_type(resources, "AWS::EC2::SecurityGroup").items():
        egress = res["Properties"].get("SecurityGroupEgress")
        assert egress, f"{name} keeps the default allow-all egress"
        for r in egress:
            assert str(r["IpProtocol"]) != "-1" or r.get("CidrIp") == "127.0.0.1/32", f"{name}: all-traffic egress"


def alb_route(resources, path):
    """What the ALB does with `path` in a deployed template (conditions evaluated): the target
    group's logical id, "jwt <target group>" when a jwt-validation action comes first, "fixed
    <status>" for a rule's fixed response, or "default" (the listener's default action)."""
    rules = sorted(of_type(resources, "AWS::ElasticLoadBalancingV2::ListenerRule").values(), key=lambda r: r["Properties"]["Priority"])
    for rule in rules:
        for cond in rule["Properties"]["Conditions"]:
            if cond["Field"] == "path-pattern":
                patterns = cond.get("PathPatternConfig", {}).get("Values") or cond.get("Values", [])
                # ALB path patterns: case-sensitive, * any characters, ? one character.
                if any(fnmatch.fnmatchcase(path, p) for p in patterns):
                    actions = sorted(rule["Properties"]["Actions"], key=lambda a: a.get("Order", 1))
                    prefix = ""
                    if actions[0]["Type"] == "jwt-validation":
                        prefix, actions = "jwt ", actions[1:]
                    (action,) = actions
                    if action["Type"] == "fixed-response":
                        return prefix + "fixed " + action["FixedResponseConfig"]["StatusCode"]
                    assert action["Type"] == "forward", action
                    return prefix + ref(action["TargetGroupArn"])
    return "default"


@pytest.mark.parametrize("path,target", [
    ("/auth", "AuthTargetGroup"),
    ("/auth/health", "AuthTargetGroup"),
    ("/auth/login", "AuthTargetGroup"),
    ("/auth/token", "AuthTargetGroup"),
    ("/auth/api-keys", "AuthTargetGroup"),
    ("/auth/api-keys/0b6f5f8e-3c1e-4d7a-9a59-1f0e7c2d4b8a", "AuthTargetGroup"),
    ("/auth/validate", "fixed 404"),
    ("/auth/validate/", "fixed 404"),
    ("/auth/validatex", "AuthTargetGroup"),
    ("/tasks", "TaskTargetGroup"),
    ("/tasks/", "TaskTargetGroup"),
    ("/tasks/health", "TaskTargetGroup"),
    ("/tasks/42", "TaskTargetGroup"),
    ("/", "default"),
    ("/tasksx", "default"),
    ("/authx", "default"),
    ("/metrics", "default"),
])
def test_routing(deployed, path, target):
    assert alb_route(deployed["Resources"], path) == target


def test_routing_rules_name_both_forms(deployed):
    patterns = set()
    for rule in of_type(deployed["Resources"], "AWS::ElasticLoadBalancingV2::ListenerRule").values():
        if rule["Properties"]["Actions"][0]["Type"] != "forward":
            continue
        for cond in rule["Properties"]["Conditions"]:
            patterns |= set(cond["PathPatternConfig"]["Values"])
    assert {"/auth", "/auth/*", "/tasks", "/tasks/*"} <= patterns


def test_validate_is_answered_by_the_alb_like_an_unknown_route(resources):
    """/auth/validate is internal: gateways call auth-svc through Cloud Map. The ALB answers it
    itself with the default action's JSON 404, from a rule evaluated before the /auth rule."""
    rules = of_type(resources, "AWS::ElasticLoadBalancingV2::ListenerRule")
    deny = rules["ValidateDenyRule"]["Properties"]
    assert deny["Priority"] < rules["AuthListenerRule"]["Properties"]["Priority"]
    assert deny["ListenerArn"] == rules["AuthListenerRule"]["Properties"]["ListenerArn"]
    (action,) = deny["Actions"]
    default = resources["HttpsListener"]["Properties"]["DefaultActions"][0]
    assert action == default, "same status, content type and body as an unknown route"
    assert action["FixedResponseConfig"]["ContentType"] == "application/json"
    assert set(json.loads(action["FixedResponseConfig"]["MessageBody"])) == {"error", "message"}


def test_default_action_is_a_json_404(resources):
    listeners = of_type(resources, "AWS::ElasticLoadBalancingV2::Listener")
    https = listeners["HttpsListener"]["Properties"]["DefaultActions"][0]
    http_if = listeners["HttpListener"]["Properties"]["DefaultActions"][0]["Fn::If"]
    assert http_if[2] == https
    cfg = https["FixedResponseConfig"]
    assert https["Type"] == "fixed-response" and cfg["StatusCode"] == "404"
    assert cfg["ContentType"] == "application/json"
    body = json.loads(cfg["MessageBody"])
    assert set(body) == {"error", "message"}


def test_target_groups(resources, containers):
    tgs = of_type(resources, "AWS::ElasticLoadBalancingV2::TargetGroup")
    assert tgs["AuthTargetGroup"]["Properties"]["HealthCheckPath"] == "/auth/health"
    assert tgs["TaskTargetGroup"]["Properties"]["HealthCheckPath"] == "/tasks/health"
    for name, tg in tgs.items():
        p = tg["Properties"]
        assert p["TargetType"] == "ip" and p["Matcher"]["HttpCode"] == "200"
        attrs = {a["Key"]: a["Value"] for a in p["TargetGroupAttributes"]}
        delay = int(attrs["deregistration_delay.timeout_seconds"])
        assert 0 < delay <= 60, f"{name}: deregistration delay {delay}"


# ----------------------------------------------------------------------------- services, scaling, monitoring

def test_services(resources, containers):
    services = of_type(resources, "AWS::ECS::Service")
    assert set(services) == {"AuthService", "TaskService"}
    expected_lb = {"AuthService": ("auth-service", AUTH_PORT, "AuthTargetGroup"),
                   "TaskService": ("gateway", GATEWAY_PORT, "TaskTargetGroup")}
    for name, svc in services.items():
        p = svc["Properties"]
        # No DesiredCount: every stack update would reset an autoscaled service to it. ECS starts
        # a new service at 1 and the scalable target's minimum takes it from there.
        assert "DesiredCount" not in p, f"{name}: DesiredCount fights autoscaling"
        assert p["LaunchType"] == "FARGATE"
        net = p["NetworkConfiguration"]["AwsvpcConfiguration"]
        assert net["AssignPublicIp"] == "DISABLED"
        assert net["Subnets"] == {"Ref": "PrivateSubnetIds"}
        cb = p["DeploymentConfiguration"]["DeploymentCircuitBreaker"]
        assert cb == {"Enable": True, "Rollback": True}
        assert p["HealthCheckGracePeriodSeconds"] >= 30
        (lb,) = p["LoadBalancers"]
        assert (lb["ContainerName"], lb["ContainerPort"], ref(lb["TargetGroupArn"])) == expected_lb[name]
        _, c = containers[lb["ContainerName"]]
        assert lb["ContainerPort"] in {pm["containerPort"] for pm in c["portMappings"]}
    # One registry each (ECS supports one per service), publishing the metrics port's SRV record.
    expected_registry = {"AuthService": ("AuthDiscoveryService", "auth-service", AUTH_METRICS_PORT),
                         "TaskService": ("TaskDiscoveryService", "gateway", GATEWAY_METRICS_PORT)}
    for name, svc in services.items():
        (registry,) = svc["Properties"]["ServiceRegistries"]
        got = (ref(registry["RegistryArn"]), registry["ContainerName"], registry["ContainerPort"])
        assert got == expected_registry[name], name


def test_autoscaling(resources):
    targets = of_type(resources, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert len(targets) == 2
    for t in targets.values():
        p = t["Properties"]
        assert (p["MinCapacity"], p["MaxCapacity"]) == ({"Ref": "MinTasksPerService"}, {"Ref": "MaxTasksPerService"})
    policies = of_type(resources, "AWS::ApplicationAutoScaling::ScalingPolicy")
    assert {ref(p["Properties"]["ScalingTargetId"]) for p in policies.values()} == set(targets)
    for p in policies.values():
        c = p["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        assert c["PredefinedMetricSpecification"]["PredefinedMetricType"] == "ECSServiceAverageCPUUtilization"
        assert (c["TargetValue"], c["ScaleOutCooldown"], c["ScaleInCooldown"]) == (70, 60, 300)


def test_alarms_and_dashboard(resources):
    alarms = {a["Properties"]["MetricName"] + ":" + physical(a["Properties"]["AlarmName"], {"NamePrefix": "task-mgmt"})
              for a in of_type(resources, "AWS::CloudWatch::Alarm").values()}
    assert alarms == {
        "HTTPCode_Target_5XX_Count:task-mgmt-high-error-rate",
        "CPUUtilization:task-mgmt-auth-service-high-cpu",
        "CPUUtilization:task-mgmt-task-service-high-cpu",
        "UnHealthyHostCount:task-mgmt-auth-service-unhealthy-hosts",
        "UnHealthyHostCount:task-mgmt-task-service-unhealthy-hosts",
        # Beyond the guide's set (test_monitoring.py checks their dimensions).
        "HTTPCode_ELB_5XX_Count:task-mgmt-alb-5xx",
        "TargetResponseTime:task-mgmt-target-p99",
        "HTTPCode_Target_5XX_Count:task-mgmt-auth-service-target-5xx",
        "HTTPCode_Target_5XX_Count:task-mgmt-task-service-target-5xx",
        "CPUUtilization:task-mgmt-db-high-cpu",
        "DatabaseConnections:task-mgmt-db-connections",
        "FreeStorageSpace:task-mgmt-db-free-storage",
    }
    body = resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][0]
    dashboard = json.loads(re.sub(r"\$\{[^}]+\}", "x", body))
    metrics = {m[1] for w in dashboard["widgets"] for m in w["properties"]["metrics"] if m[0] != "..."}
    assert {"RequestCount", "TargetResponseTime", "CPUUtilization", "MemoryUtilization",
            "DatabaseConnections", "RunningTaskCount"} <= metrics


def test_platform_resources(resources):
    cluster = resources["Cluster"]["Properties"]
    assert {"Name": "containerInsights", "Value": "enabled"} in cluster["ClusterSettings"]
    for lg in of_type(resources, "AWS::Logs::LogGroup").values():
        assert lg["Properties"]["RetentionInDays"] == 30
    assert not of_type(resources, "AWS::ECR::Repository"), "the repositories are bootstrap.yaml's (pushed to before this stack)"
    db = resources["Database"]["Properties"]
    assert db["Engine"] == "postgres" and db["EngineVersion"].split(".")[0] == "15"
    assert db["StorageEncrypted"] is True and db["PubliclyAccessible"] is False
    assert db["BackupRetentionPeriod"] == 7
    assert resources["DbSubnetGroup"]["Properties"]["SubnetIds"] == {"Ref": "PrivateSubnetIds"}
    assert physical(resources["Namespace"]["Properties"]["Name"]) == "${NamePrefix}.local"
