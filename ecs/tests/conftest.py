"""Shared fixtures: the CloudFormation template (parsed with cfn-lint's decoder, intrinsics kept
as {"Ref": ...} / {"Fn::Sub": ...} dicts) and the task definitions rendered from it."""

import json
import re
import sys
from pathlib import Path

import pytest

ECS_DIR = Path(__file__).resolve().parents[1]
REPO = ECS_DIR.parent
sys.path.insert(0, str(ECS_DIR))

import taskdefs  # noqa: E402


CFN_DIR = ECS_DIR / "cloudformation"


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
def containers(rendered):
    """Container name -> (task definition, container definition)."""
    out = {}
    for td in rendered.values():
        for c in td["containerDefinitions"]:
            assert c["name"] not in out, f"container name {c['name']} used twice"
            out[c["name"]] = (td, c)
    return out
