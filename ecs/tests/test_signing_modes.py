"""Issue 19 on the template: each signing mode (JwtAlgorithm HS256, RS256, EdDSA) gives exactly
the roles that must read each secret that right, and nobody else; only auth-svc's task role can
read the RS256/EdDSA private key; the gateway holds no signing material then; the ALB's optional
jwt-validation action sits in front of the /tasks rules in RS256 mode only.

Each test evaluates the template for a mode's parameters (conditions, Fn::If, AWS::NoValue), as
CloudFormation deploys it.
"""

import json
import re
import tomllib

import pytest

from conftest import ALB_VALIDATION, ECS_DIR, KEY_ARN, REPO, SIGNING_MODES, deployed_template, rendered_for
from template_conditions import parameter_values
from test_invariants import alb_route, env, listify, of_type, policy_statements, ref, secret_grants
from test_scale import accepted

SECRETS = ("DbSecret", "JwtSecret", "JwtSigningKeySecretArn")

# Who may read which secret, by mode. HS256: the execution role injects DB_* and
# JWT_EXPIRATION; auth-svc and the gateway re-read the shared secret. RS256/EdDSA: the
# execution role injects DB_* only; auth-svc alone reads its private key; the shared secret
# (kept so a switch back to HS256 does not collide with a deleted secret's name) is read by nobody.
EXPECTED_READERS = {
    "HS256": {"DbSecret": {"ExecutionRole"},
              "JwtSecret": {"ExecutionRole", "AuthServiceTaskRole", "TaskServiceTaskRole"},
              "JwtSigningKeySecretArn": set()},
    "RS256": {"DbSecret": {"ExecutionRole"}, "JwtSecret": set(), "JwtSigningKeySecretArn": {"AuthServiceTaskRole"}},
    "EdDSA": {"DbSecret": {"ExecutionRole"}, "JwtSecret": set(), "JwtSigningKeySecretArn": {"AuthServiceTaskRole"}},
}


def readers(template):
    """Secret -> the roles with a GetSecretValue grant on it."""
    grants = secret_grants(template["Resources"], template["Parameters"])
    return {secret: {role for role, s in grants if s == secret} for secret in SECRETS}


def roles_of(rendered):
    """Task definition file -> {"execution": role, "task": role} (logical ids)."""
    def logical(placeholder):
        return placeholder.strip("${}").removesuffix("Arn")
    return {name: {"execution": logical(td["executionRoleArn"]), "task": logical(td["taskRoleArn"])}
            for name, td in rendered.items()}


def container(rendered, name):
    (c,) = [c for td in rendered.values() for c in td["containerDefinitions"] if c["name"] == name]
    return c


@pytest.mark.parametrize("mode", sorted(SIGNING_MODES))
def test_exactly_the_roles_that_must_read_each_secret_can(mode):
    template = deployed_template(SIGNING_MODES[mode])
    got = readers(template)
    assert got == EXPECTED_READERS[mode], f"{mode}: {got}"


@pytest.mark.parametrize("mode", ["RS256", "EdDSA"])
def test_only_auth_svcs_task_role_can_read_the_private_key(mode):
    """The private key's only reader is the task role of the auth-service task definition: not
    the task-service task role (task-svc, the gateway, the collector), not the execution role of
    either task definition."""
    params = SIGNING_MODES[mode]
    template = deployed_template(params)
    rendered = rendered_for(params)
    roles = roles_of(rendered)
    key_readers = readers(template)["JwtSigningKeySecretArn"]
    assert key_readers == {roles["auth-service.json"]["task"]} == {"AuthServiceTaskRole"}
    for name, r in roles.items():
        assert r["execution"] not in key_readers, f"{name}: its execution role can read the private key"
    assert roles["task-service.json"]["task"] not in key_readers
    # Nothing injects the key (the execution role would need it): auth-svc reads it itself.
    for td in rendered.values():
        for c in td["containerDefinitions"]:
            for s in c.get("secrets", []):
                assert "${JwtSigningKeySecretArn}" not in s["valueFrom"], c["name"]
    # The key's ARN reaches exactly one container, auth-svc's, as JWT_SECRET_ARN.
    told = [(c["name"], e["name"]) for td in rendered.values() for c in td["containerDefinitions"]
            for e in c.get("environment", []) if e["value"] == "${JwtSigningKeySecretArn}"]
    assert told == [("auth-service", "JWT_SECRET_ARN")]


@pytest.mark.parametrize("mode", sorted(SIGNING_MODES))
def test_both_services_are_told_the_algorithm_and_only_hs256_gateways_a_secret(mode):
    params = SIGNING_MODES[mode]
    rendered = rendered_for(params)
    values = parameter_values(deployed_template(params), params)
    auth, gateway = env(container(rendered, "auth-service")), env(container(rendered, "gateway"))
    for e in (auth, gateway):
        assert e["JWT_ALG"] == "${JwtAlgorithm}" and values["JwtAlgorithm"] == mode
    gateway_secrets = {s["name"] for s in container(rendered, "gateway").get("secrets", [])}
    jwt_names = {n for n in set(gateway) | gateway_secrets if n.startswith("JWT_SECRET")}
    if mode == "HS256":
        assert jwt_names == {"JWT_SECRET_ARN"} and gateway["JWT_SECRET_ARN"] == "${JwtSecretArn}"
        assert auth["JWT_SECRET_ARN"] == "${JwtSecretArn}"
    else:
        assert jwt_names == set(), f"{mode}: the gateway must hold no signing material"
        assert auth["JWT_SECRET_ARN"] == "${JwtSigningKeySecretArn}"
        # It finds auth-svc's JWKS through the Cloud Map name it already uses.
        assert gateway["AUTH_SERVICE_URL"].startswith("http://auth-service.")
    # The token lifetime: from the shared secret in HS256 mode, a plain value otherwise.
    auth_c = container(rendered, "auth-service")
    injected = {s["name"] for s in auth_c["secrets"]}
    assert ("JWT_EXPIRATION" in injected) == (mode == "HS256")
    assert ("JWT_EXPIRATION" in auth) == (mode != "HS256")


@pytest.mark.parametrize("mode", sorted(SIGNING_MODES))
def test_task_service_task_role_reads_no_secret_outside_hs256(mode):
    template = deployed_template(SIGNING_MODES[mode])
    role = template["Resources"]["TaskServiceTaskRole"]
    secret_statements = [st for st in policy_statements(role)
                         if any(a.startswith("secretsmanager:") for a in listify(st["Action"]))]
    assert bool(secret_statements) == (mode == "HS256")


def test_asymmetric_modes_need_the_key_and_hs256_does_not(template):
    assert template["Parameters"]["JwtAlgorithm"]["Default"] == "HS256"
    assert set(template["Parameters"]["JwtAlgorithm"]["AllowedValues"]) == set(SIGNING_MODES)
    for mode, params in SIGNING_MODES.items():
        assert accepted(template, params), mode
        if mode != "HS256":
            assert not accepted(template, {**params, "JwtSigningKeySecretArn": ""}), f"{mode} without a key"
    assert re.fullmatch(template["Parameters"]["JwtSigningKeySecretArn"]["AllowedPattern"], KEY_ARN)


def test_deploy_sh_passes_the_keys_arn_never_the_key():
    """The key is generated by ecs/deploy.sh and stored before the stack; the stack gets the
    secret's ARN. The deploy test (ecs/deploy_test) checks the behaviour against moto."""
    deploy = (ECS_DIR / "deploy.sh").read_text()
    signing = (ECS_DIR / "deploy" / "signing_key.sh").read_text()
    assert '"JwtAlgorithm=$JWT_ALG"' in deploy and '"JwtSigningKeySecretArn=$SIGNING_KEY_ARN"' in deploy
    assert "signing_key_ensure" in deploy and "signing_key_schedule_deletion" in deploy
    # Into Secrets Manager through stdin, never as a command-line argument (ps shows those).
    assert "--secret-string file:///dev/stdin" in signing
    assert "rsa_keygen_bits:2048" in signing and "-algorithm ed25519" in signing
    assert not re.search(r'echo "\$(secret|pem)"', signing)


# ----------------------------------------------------------------------------- ALB pre-verification

def claims_constant(name):
    text = (REPO / "platform" / "src" / "keyring" / "claims.rs").read_text()
    return re.search(rf'pub const {name}: &str = "([^"]+)";', text).group(1)


def public_paths():
    return tomllib.loads((REPO / "sidecar.toml").read_text())["routes"]["public"]


def test_alb_validates_tasks_tokens_in_rs256_mode():
    template = deployed_template(ALB_VALIDATION)
    res = template["Resources"]
    rule = res["TaskListenerRule"]["Properties"]
    assert ref(rule["ListenerArn"]) == "HttpsListener"
    first, second = sorted(rule["Actions"], key=lambda a: a["Order"])
    assert first["Type"] == "jwt-validation" and second == {"Type": "forward", "Order": 2, "TargetGroupArn": {"Ref": "TaskTargetGroup"}}
    cfg = first["JwtValidationConfig"]
    assert cfg["JwksEndpoint"] == {"Fn::Sub": "https://${DomainName}/auth/.well-known/jwks.json"}
    assert cfg["Issuer"] == claims_constant("ISSUER")
    assert cfg["AdditionalClaims"] == [{"Name": "aud", "Format": "single-string", "Values": [claims_constant("AUDIENCE")]}]
    # The ALB fetches the JWKS itself, over HTTPS.
    egress = res["AlbJwksEgress"]["Properties"]
    assert ref(egress["GroupId"]) == "AlbSecurityGroup" and (egress["FromPort"], egress["ToPort"]) == (443, 443)


@pytest.mark.parametrize("path,route", [
    ("/tasks", "jwt TaskTargetGroup"),
    ("/tasks/42", "jwt TaskTargetGroup"),
    ("/auth/login", "AuthTargetGroup"),
    ("/auth/.well-known/jwks.json", "AuthTargetGroup"),
    ("/auth/validate", "fixed 404"),
    ("/nope", "default"),
] + [(p, "TaskTargetGroup") for p in public_paths()])
def test_alb_validation_spares_the_public_paths(path, route):
    """The gateway's public paths (sidecar.toml) carry no token and the JWKS must be fetchable
    without one: those go through unvalidated; every other /tasks path is validated."""
    assert alb_route(deployed_template(ALB_VALIDATION)["Resources"], path) == route


@pytest.mark.parametrize("params", [{}, SIGNING_MODES["RS256"], SIGNING_MODES["EdDSA"],
                                    {**SIGNING_MODES["RS256"], "DomainName": "api.example.com", "HostedZoneId": "Z0123456789ABC"}])
def test_no_alb_validation_unless_asked_for(params):
    res = deployed_template(params)["Resources"]
    assert "AlbJwksEgress" not in res and "TaskPublicListenerRule" not in res
    for rule in of_type(res, "AWS::ElasticLoadBalancingV2::ListenerRule").values():
        assert all(a["Type"] != "jwt-validation" for a in rule["Properties"]["Actions"])


def test_alb_validation_needs_rs256_and_https(template):
    assert template["Parameters"]["AlbJwtValidation"]["Default"] == "false"
    assert accepted(template, ALB_VALIDATION)
    assert not accepted(template, {**ALB_VALIDATION, **SIGNING_MODES["EdDSA"]}), "the ALB verifies RS256 only"
    assert not accepted(template, {**ALB_VALIDATION, "DomainName": "", "HostedZoneId": ""}), "needs HTTPS and a public JWKS"


def test_cfn_lint_schema_knows_the_action_the_template_uses():
    """The template's jwt-validation action is what cfn-lint's CloudFormation schema defines (so
    cfn-lint in ecs/check.sh validates it); botocore's ELBv2 model here predates it (README)."""
    from cfnlint.schema.manager import PROVIDER_SCHEMA_MANAGER

    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", "AWS::ElasticLoadBalancingV2::ListenerRule").schema
    action = schema["definitions"]["Action"]
    assert "jwt-validation" in action["properties"]["Type"]["enum"]
    config = schema["definitions"]["JwtValidationConfig"]
    assert set(config["required"]) == {"JwksEndpoint", "Issuer"}
    used = deployed_template(ALB_VALIDATION)["Resources"]["TaskListenerRule"]["Properties"]["Actions"][0]["JwtValidationConfig"]
    assert set(used) <= set(config["properties"])


def test_readme_rule_is_the_templates():
    """ecs/README.md shows the rule as `aws elbv2 create-rule` input for those who add it by
    hand; its actions are the template's."""
    readme = (ECS_DIR / "README.md").read_text()
    block = readme.split("<!-- alb-jwt-validation-actions -->", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    actions = json.loads(block)
    template = deployed_template(ALB_VALIDATION)
    expected = json.loads(json.dumps(template["Resources"]["TaskListenerRule"]["Properties"]["Actions"])
                          .replace('{"Fn::Sub": "https://${DomainName}/auth/.well-known/jwks.json"}', '"https://api.example.com/auth/.well-known/jwks.json"')
                          .replace('{"Ref": "TaskTargetGroup"}', '"<task-service target group ARN>"'))
    assert actions == expected
