"""The Dockerfiles and the image script agree with the task definitions and the template."""

import json
import re
import subprocess

import pytest

from conftest import ECS_DIR
from test_invariants import BINARIES, env, of_type

IMAGES = ECS_DIR / "images"
CONTAINER_OF = {b: c for c, b in BINARIES.items()}


def instructions(binary):
    """(INSTRUCTION, argument) pairs of ecs/images/Dockerfile.<binary>, continuations joined."""
    text = (IMAGES / f"Dockerfile.{binary}").read_text()
    text = re.sub(r"\\\n\s*", " ", text)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def one(binary, word):
    found = [arg for w, arg in instructions(binary) if w == word]
    assert len(found) == 1, f"Dockerfile.{binary}: expected one {word}, found {found}"
    return found[0]


@pytest.mark.parametrize("binary", sorted(CONTAINER_OF))
def test_dockerfile_matches_task_definition(binary, containers):
    _, c = containers[CONTAINER_OF[binary]]
    froms = [arg for w, arg in instructions(binary) if w == "FROM"]
    assert froms == ["scratch"], "no base image can be pulled here; images are FROM scratch"
    assert one(binary, "USER") == c["user"], "image user and task definition user differ"
    assert json.loads(one(binary, "ENTRYPOINT")) == [f"/usr/local/bin/{binary}"]
    health = one(binary, "HEALTHCHECK")
    assert json.loads(health.split(" CMD ", 1)[1]) == c["healthCheck"]["command"][1:]
    exposed = {int(p) for arg in [a for w, a in instructions(binary) if w == "EXPOSE"] for p in arg.split()}
    assert exposed == {p["containerPort"] for p in c.get("portMappings", [])}
    assert not any(w == "RUN" for w, _ in instructions(binary)), "no shell in the image to RUN with"


def test_gateway_image_carries_its_config(containers):
    _, gw = containers["gateway"]
    path = env(gw)["SIDECAR_CONFIG"]
    assert f"sidecar.toml {path}" in [a for w, a in instructions("gateway") if w == "COPY"]
    assert f"SIDECAR_CONFIG={path}" in [a for w, a in instructions("gateway") if w == "ENV"]


def test_image_names_are_the_ecr_repositories(resources):
    script = (IMAGES / "images.sh").read_text()
    declared = dict(re.findall(r"\[([a-z-]+)\]=(task-mgmt-[a-z-]+)", script))
    repos = {r["Properties"]["RepositoryName"] for r in of_type(resources, "AWS::ECR::Repository").values()}
    assert set(declared) == set(CONTAINER_OF)
    assert set(declared.values()) == repos
    assert "buildah bud --isolation chroot" in script


@pytest.mark.parametrize("script", ["check.sh", "images/images.sh"])
def test_scripts_parse(script):
    subprocess.run(["bash", "-n", str(ECS_DIR / script)], check=True)
