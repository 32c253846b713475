"""`ecs/deploy.sh up`, a second `up`, `status` and `down` against real local stand-ins.

AWS APIs: moto_server (CloudFormation change sets and stacks, S3, ECR, EC2, ELBv2, ECS, RDS, IAM,
Logs, STS). Registry: Debian's docker-registry, which gets the images pushed with skopeo
(FROM scratch images of the test build's binaries). Smoke flow: the run command's front door
(the ALB stand-in), since moto's load balancer has no data plane.

What moto lacks is printed, not faked: the resource types and attributes its CloudFormation does
not implement are left out of the deployed copies of the templates (moto_templates.py), and the
resources it cannot delete are named when `down` cannot delete the network stack.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import urllib.request

import pytest

from conftest import ECS_DIR, VENV, deploy_env, run_deploy
import moto_templates

STACK = "deploytest"


@pytest.fixture(scope="module")
def env(moto, registry, workdir):
    report = moto_templates.write_copies(ECS_DIR / "cloudformation", workdir / "templates")
    print("\nNot implemented by moto's CloudFormation, so not part of the stacks deployed here "
          "(checked offline by ecs/check.sh; created only by a real deploy):")
    print(moto_templates.describe(report))
    fixes = [line.split("moto fix: ", 1)[1].strip() for line in moto["log"].read_text().splitlines() if "moto fix: " in line]
    print("moto bugs fixed in moto_server.py (moto then does what CloudFormation documents):")
    for text in fixes:
        print(f"  - {text}")
    return deploy_env(moto["url"], registry, workdir / "templates")


def aws(env: dict, *args: str):
    out = subprocess.run([str(VENV / "bin" / "aws"), "--region", "us-east-1", "--endpoint-url", env["AWS_ENDPOINT_URL"],
                          "--output", "json", *args], env=env, text=True, capture_output=True, check=True).stdout
    return json.loads(out) if out.strip() else None


def stack_status(env: dict, name: str) -> str:
    try:
        return aws(env, "cloudformation", "describe-stacks", "--stack-name", name)["Stacks"][0]["StackStatus"]
    except subprocess.CalledProcessError:
        return "NONE"


def registry_tags(registry: str, repo: str) -> list[str]:
    with urllib.request.urlopen(f"http://{registry}/v2/{repo}/tags/list", timeout=5) as response:
        return json.load(response).get("tags") or []


def smoke_results(output: str) -> tuple[list[str], list[str]]:
    passed = re.findall(r"^  PASS  (.+?)\s{2,}", output, re.M)
    failed = re.findall(r"^  FAIL  (.+)$", output, re.M)
    return passed, failed


def role_policies(env, logical_id: str) -> dict:
    """Policy name -> document of a role the main stack created."""
    # list-stack-resources: moto's describe-stack-resource misses resources it has not updated.
    (name,) = [r["PhysicalResourceId"] for r in aws(env, "cloudformation", "list-stack-resources", "--stack-name", STACK)["StackResourceSummaries"]
               if r["LogicalResourceId"] == logical_id]
    out = {}
    for policy in aws(env, "iam", "list-role-policies", "--role-name", name)["PolicyNames"]:
        doc = aws(env, "iam", "get-role-policy", "--role-name", name, "--policy-name", policy)["PolicyDocument"]
        if isinstance(doc, str):
            # moto keeps a policy document CloudFormation gave it as a dict in Python's repr.
            doc = json.loads(doc) if doc.lstrip().startswith('{"') else ast.literal_eval(doc)
        out[policy] = doc
    return out


def secret_readers(policies: dict) -> set[str]:
    """The secret ARNs a role's inline policies let it GetSecretValue."""
    arns = set()
    for doc in policies.values():
        for st in doc["Statement"]:
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            if "secretsmanager:GetSecretValue" in actions:
                arns |= set(st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]])
    return arns


def check_asymmetric_signing(env: dict, args: list[str]) -> None:
    """`up --jwt-alg EdDSA` on the HS256 stack: the key is generated and stored before the stack
    update, never printed, and only auth-svc's task role may read it; a later `up` keeps the mode
    and the key; another algorithm for the same key is refused."""
    name = f"{STACK}-jwt-signing-key"
    third = run_deploy(["up", *args, "--jwt-alg", "EdDSA", "--no-smoke"], env)
    assert third.returncode == 0, "up --jwt-alg EdDSA failed"
    out = third.stdout
    assert f"signing key {name}: generating a new EdDSA key with openssl" in out
    assert out.index("generating a new EdDSA key") < out.index(f"{STACK}: UPDATE change set")
    secret = aws(env, "secretsmanager", "get-secret-value", "--secret-id", name)
    value = json.loads(secret["SecretString"])
    assert set(value) == {"alg", "private_key"} and value["alg"] == "EdDSA"
    pem = value["private_key"]
    assert pem.startswith("-----BEGIN PRIVATE KEY-----"), "PKCS#8 PEM"
    text = subprocess.run(["openssl", "pkey", "-noout", "-text"], input=pem, text=True, capture_output=True, check=True).stdout
    assert text.startswith("ED25519 Private-Key"), text.splitlines()[0]
    body = "".join(pem.strip().splitlines()[1:-1])
    assert "PRIVATE KEY" not in out and body not in out.replace("\n", ""), "the key must never be printed"
    tags = {t["Key"]: t["Value"] for t in aws(env, "secretsmanager", "describe-secret", "--secret-id", name)["Tags"]}
    assert tags == {"jwt-alg": "EdDSA"}
    (main,) = aws(env, "cloudformation", "describe-stacks", "--stack-name", STACK)["Stacks"]
    params = {p["ParameterKey"]: p["ParameterValue"] for p in main["Parameters"]}
    assert params["JwtAlgorithm"] == "EdDSA" and params["JwtSigningKeySecretArn"] == secret["ARN"]
    assert params["Tracing"] == "true"
    # The roles moto created from the updated stack: the key's ARN in auth-svc's task role only.
    readers = {role: secret_readers(role_policies(env, role)) for role in ("AuthServiceTaskRole", "TaskServiceTaskRole", "ExecutionRole")}
    print(f"GetSecretValue grants after the EdDSA update: {readers}")
    assert secret["ARN"] in readers["AuthServiceTaskRole"]
    assert secret["ARN"] not in readers["TaskServiceTaskRole"] | readers["ExecutionRole"]
    assert not readers["TaskServiceTaskRole"], "the gateway's task role reads no secret in EdDSA mode"

    again = run_deploy(["up", *args, "--no-smoke"], env)
    assert again.returncode == 0 and "token signing EdDSA" in again.stdout
    assert f"signing key {name} (EdDSA) exists: kept" in again.stdout and f"{STACK}: no changes" in again.stdout

    refused = run_deploy(["up", *args, "--jwt-alg", "RS256", "--no-smoke"], env)
    assert refused.returncode == 1 and f"signing key {name} is tagged jwt-alg=EdDSA, not RS256" in refused.stdout
    assert json.loads(aws(env, "secretsmanager", "get-secret-value", "--secret-id", name)["SecretString"]) == value


def test_preflight_says_what_is_missing(env, tmp_path):
    """Without credentials, `up` stops before touching anything and names what to set."""
    no_creds = {k: v for k, v in env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    no_creds["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"  # nothing listens: no call may succeed
    result = run_deploy(["up", "--stack", STACK, "--builder", "scratch"], no_creds, timeout=120)
    assert result.returncode == 1
    assert "no usable AWS credentials" in result.stdout and "AWS_PROFILE" in result.stdout
    # Without any AWS CLI (none on PATH, none in the venv).
    bare = {**env, "PATH": "/usr/bin:/bin", "VENV": str(tmp_path)}
    result = run_deploy(["status", "--stack", STACK], bare, timeout=60)
    assert result.returncode == 1 and "missing:" in result.stdout and "the AWS CLI" in result.stdout


def test_up_up_status_down(env, registry, front_door):
    args = ["--stack", STACK, "--builder", "scratch", "--smoke-url", front_door]

    # ------------------------------------------------------------------ first up: creates everything
    first = run_deploy(["up", *args], env)
    assert first.returncode == 0, "first up failed"
    out = first.stdout
    for name in (f"{STACK}-bootstrap", f"{STACK}-network", STACK):
        assert f"{name}: CREATE change set" in out and f"{name}: CREATE_COMPLETE" in out, name
    tag = re.search(r":(\S+) for linux/amd64", out).group(1)
    for suffix in ("auth-service", "task-service", "gateway"):
        assert f"building and pushing {STACK}-{suffix}:{tag}" in out
        assert tag in registry_tags(registry, f"{STACK}-{suffix}"), f"{suffix} not in the registry"
    # Deletion protection only after the first create succeeded.
    assert "turning on RDS deletion protection" in out and f"{STACK}: UPDATE_COMPLETE" in out
    assert re.search(r"^URL: +http://", out, re.M)
    assert "HTTP ONLY: no DomainName" in out
    passed, failed = smoke_results(out)
    assert not failed, failed
    assert {"GET /auth/health", "POST /auth/register", "POST /auth/login", "POST /tasks (create)", "GET /tasks (list)",
            "GET /tasks with a forged token refused"} <= set(passed)
    assert any(p.startswith("PUT /tasks/") for p in passed) and any(p.startswith("DELETE /tasks/") for p in passed)
    # What the stacks hold in moto: the repositories, the network's subnets in two AZs, the
    # parameters the command passed.
    repos = {r["repositoryName"] for r in aws(env, "ecr", "describe-repositories")["repositories"]}
    assert {f"{STACK}-auth-service", f"{STACK}-task-service", f"{STACK}-gateway"} <= repos
    (main,) = aws(env, "cloudformation", "describe-stacks", "--stack-name", STACK)["Stacks"]
    params = {p["ParameterKey"]: p["ParameterValue"] for p in main["Parameters"]}
    assert params["AuthImageTag"] == params["TaskImageTag"] == params["GatewayImageTag"] == tag
    assert params["DbDeletionProtection"] == "true" and params["NamePrefix"] == STACK
    assert params["CpuArchitecture"] == "X86_64"
    (network,) = aws(env, "cloudformation", "describe-stacks", "--stack-name", f"{STACK}-network")["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in network["Outputs"]}
    subnets = aws(env, "ec2", "describe-subnets", "--subnet-ids", *outputs["PrivateSubnetIds"].split(","))["Subnets"]
    assert len({s["AvailabilityZone"] for s in subnets}) == 2
    assert params["EndpointSecurityGroupId"].startswith("sg-"), "endpoints egress by default"
    endpoint_sg = aws(env, "ec2", "describe-security-groups", "--group-ids", params["EndpointSecurityGroupId"])["SecurityGroups"][0]
    sources = {(p["FromPort"], g["GroupId"]) for p in endpoint_sg["IpPermissions"] for g in p.get("UserIdGroupPairs", [])}
    assert len(sources) == 2 and {port for port, _ in sources} == {443}, "443 from the two task groups"

    # ------------------------------------------------------------------ second up: changes nothing
    second = run_deploy(["up", *args], env)
    assert second.returncode == 0, "second up failed"
    out = second.stdout
    for name in (f"{STACK}-bootstrap", f"{STACK}-network", STACK):
        assert f"{name}: no changes" in out, name
    assert "change set deploy-" not in out and "building and pushing" not in out
    assert out.count("is in the registry: not rebuilt") == 3
    assert not smoke_results(out)[1]

    # ------------------------------------------------------------------ EdDSA: auth-svc's own key
    check_asymmetric_signing(env, args)

    # ------------------------------------------------------------------ status
    status = run_deploy(["status", "--stack", STACK], env)
    assert status.returncode == 0
    assert re.search(rf"^{STACK} +UPDATE_COMPLETE", status.stdout, re.M)
    assert f"auth {tag}, task {tag}, gateway {tag}" in status.stdout
    assert re.search(r"^token signing +EdDSA", status.stdout, re.M)
    assert re.search(r"^signing key secret +active arn:\S+ EdDSA", status.stdout, re.M)

    # ------------------------------------------------------------------ down
    down = run_deploy(["down", "--stack", STACK, "--yes"], env)
    out = down.stdout
    assert f"{STACK}: deleted" in out and f"{STACK}-bootstrap: deleted" in out
    assert stack_status(env, STACK) == "NONE" and stack_status(env, f"{STACK}-bootstrap") == "NONE"
    repos = {r["repositoryName"] for r in aws(env, "ecr", "describe-repositories")["repositories"]}
    assert not {r for r in repos if r.startswith(f"{STACK}-")}, "repositories left behind"
    assert "kept:" in out and "RDS snapshot" in out
    # The signing key goes after the stack, with a recovery window, and down says so.
    assert f"{STACK}-jwt-signing-key: the RS256/EdDSA signing key, SCHEDULED for deletion on" in out
    assert aws(env, "secretsmanager", "describe-secret", "--secret-id", f"{STACK}-jwt-signing-key").get("DeletedDate")
    if "no RDS snapshot" in out:
        print("moto does not implement DeletionPolicy: Snapshot for AWS::RDS::DBInstance: no final snapshot "
              "was taken, and down said so (on AWS it lists the snapshot it keeps)")
    if down.returncode != 0:
        # Only the network stack may remain, and only because moto cannot delete its resources.
        assert re.search(r"NOT deleted.*\n  - " + re.escape(f"{STACK}-network") + r"\n\Z", out, re.S), out[-800:]
        undeletable = moto_templates.undeletable_types(ECS_DIR / "cloudformation" / "network.yaml")
        assert undeletable, "moto could delete every network resource, so the failure is ours"
        print("moto implements no CloudFormation deletion for these network resource types, so it cannot "
              "delete the VPC (DependencyViolation); on AWS the network stack is deleted:")
        print("  " + ", ".join(undeletable))
