"""Shared fixtures: the CloudFormation template (parsed with cfn-lint's decoder, intrinsics kept
as {"Ref": ...} / {"Fn::Sub": ...} dicts), the template as deployed for given parameters
(conditions evaluated), and the task definitions rendered from it."""

import functools
import json
import re
import sys
from pathlib import Path

import pytest

ECS_DIR = Path(__file__).resolve().parents[1]
REPO = ECS_DIR.parent
sys.path.insert(0, str(ECS_DIR))

import taskdefs  # noqa: E402
import template_conditions  # noqa: E402


CFN_DIR = ECS_DIR / "cloudformation"

# The ADOT collector sidecar's container name, one in each task definition (Tracing=true).
COLLECTOR = "otel-collector"

# A signing key ARN as ecs/deploy.sh passes it (RS256/EdDSA), and the parameter choices of each
# signing mode.
KEY_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:task-mgmt-jwt-signing-key-AbCdEf"
SIGNING_MODES = {
    "HS256": {"JwtAlgorithm": "HS256"},
    "RS256": {"JwtAlgorithm": "RS256", "JwtSigningKeySecretArn": KEY_ARN},
    "EdDSA": {"JwtAlgorithm": "EdDSA", "JwtSigningKeySecretArn": KEY_ARN},
}
# The parameters an HTTPS stack with the ALB's jwt-validation gets (RS256 only).
ALB_VALIDATION = {**SIGNING_MODES["RS256"], "DomainName": "api.example.com", "HostedZoneId": "Z0123456789ABC",
                  "AlbJwtValidation": "true"}


@functools.cache
def main_template():
    """The main template, parsed once (nothing here mutates it)."""
    return taskdefs.load_template()


def deployed_template(params=None):
    """The main template as CloudFormation deploys it for these parameters (defaults for the
    others): conditions evaluated, Fn::If resolved, AWS::NoValue removed."""
    return template_conditions.for_parameters(main_template(), params)


def rendered_for(params=None):
    """File name -> task definition (API shape) for these parameters."""
    return {name: json.loads(text) for name, text in taskdefs.render(main_template(), params=params).items()}


def service_containers(rendered):
    """Container name -> (task definition, container definition), the collector sidecars left out."""
    out = {}
    for td in rendered.values():
        for c in td["containerDefinitions"]:
            if c["name"] == COLLECTOR:
                continue
            assert c["name"] not in out, f"container name {c['name']} used twice"
            out[c["name"]] = (td, c)
    return out


def physical(value, defaults=None):
    """A physical name as text: a literal, or an Fn::Sub string with ${Parameter}s filled from
    `defaults` (left as ${Name} when not given)."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        text = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
        return re.sub(r"\$\{(\w+)\}", lambda m: str((defaults or {}).get(m.group(1), m.group(0))), text)
    return value


@pytest.fixture(scope="session")
def template():
    return taskdefs.load_template()


@pytest.fixture(scope="session")
def defaults(template):
    """The main template's parameter defaults."""
    return {k: v["Default"] for k, v in template["Parameters"].items() if "Default" in v}


@pytest.fixture(scope="session")
def bootstrap():
    return taskdefs.load_template(CFN_DIR / "bootstrap.yaml")


@pytest.fixture(scope="session")
def network():
    return taskdefs.load_template(CFN_DIR / "network.yaml")


@pytest.fixture(scope="session")
def deploy_role():
    return taskdefs.load_template(CFN_DIR / "github-deploy-role.yaml")


@pytest.fixture(scope="session")
def resources(template):
    return template["Resources"]


@pytest.fixture(scope="session")
def rendered():
    """File name -> task definition (API shape) rendered from the template."""
    return {name: json.loads(text) for name, text in taskdefs.render().items()}


@pytest.fixture(scope="session")
def deployed():
    """The main template for its parameter defaults (HS256, Tracing on, no domain)."""
    return deployed_template()


@pytest.fixture(scope="session")
def containers(rendered):
    """Container name -> (task definition, container definition) of the services' containers
    (auth-service, task-service, gateway); the collector sidecars are in `collectors`."""
    return service_containers(rendered)


@pytest.fixture(scope="session")
def collectors(rendered):
    """Task definition file -> (task definition, its collector container)."""
    out = {}
    for name, td in rendered.items():
        (c,) = [c for c in td["containerDefinitions"] if c["name"] == COLLECTOR]
        out[name] = (td, c)
    return out
