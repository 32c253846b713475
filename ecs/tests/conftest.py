"""Shared fixtures: the CloudFormation template (parsed with cfn-lint's decoder, intrinsics kept
as {"Ref": ...} / {"Fn::Sub": ...} dicts) and the task definitions rendered from it."""

import json
import sys
from pathlib import Path

import pytest

ECS_DIR = Path(__file__).resolve().parents[1]
REPO = ECS_DIR.parent
sys.path.insert(0, str(ECS_DIR))

import taskdefs  # noqa: E402


@pytest.fixture(scope="session")
def template():
    return taskdefs.load_template()


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
