"""The Dockerfiles and the image script agree with the task definitions and the template."""

import json
import re
import subprocess

import pytest

from conftest import ECS_DIR, REPO
from test_invariants import BINARIES, env, of_type

IMAGES = ECS_DIR / "images"
CONTAINER_OF = {b: c for c, b in BINARIES.items()}


def parse(path):
    """(INSTRUCTION, argument) pairs of a Dockerfile, continuations joined."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def instructions(binary):
    """ecs/images/Dockerfile.<binary> (the FROM scratch image)."""
    return parse(IMAGES / f"Dockerfile.{binary}")


def stage(binary):
    """The instructions of the multi-stage Dockerfile that make the <binary> target: the shared
    runtime stage's, then the target's own."""
    stages, current = {}, None
    for word, arg in parse(IMAGES / "Dockerfile"):
        if word == "FROM":
            base, _, name = arg.partition(" AS ")
            current = name.strip()
            stages[current] = list(stages.get(base.strip(), [])) + [(word, arg)]
        else:
            stages[current].append((word, arg))
    return stages[binary]


def one(found, word, where):
    args = [arg for w, arg in found if w == word]
    assert len(args) == 1, f"{where}: expected one {word}, found {args}"
    return args[0]


def check_image(found, where, binary, c, td):
    assert one(found, "USER", where) == c["user"], f"{where}: image user and task definition user differ"
    assert json.loads(one(found, "ENTRYPOINT", where)) == [f"/usr/local/bin/{binary}"]
    health = one(found, "HEALTHCHECK", where)
    assert json.loads(health.split(" CMD ", 1)[1]) == c["healthCheck"]["command"][1:]
    exposed = {int(p) for arg in [a for w, a in found if w == "EXPOSE"] for p in arg.split()}
    assert exposed == {p["containerPort"] for p in c.get("portMappings", [])}, where
    # Every writable mount is a VOLUME of the image, owned by the container's user: Fargate
    # copies a VOLUME directory (owner included) into the bind volume, else it is root:root 0755.
    volumes = {p for w, a in found if w == "VOLUME" for p in json.loads(a)}
    mounts = {m["containerPath"] for m in c.get("mountPoints", [])}
    assert volumes == mounts, f"{where}: VOLUME {volumes} but the task mounts {mounts}"
    for path in mounts:
        owned = [a for w, a in found if w == "COPY" and f"--chown={c['user']}" in a and a.rstrip("/").endswith(path)]
        assert owned, f"{where}: {path} is not created owned by {c['user']}"


@pytest.mark.parametrize("binary", sorted(CONTAINER_OF))
def test_scratch_dockerfile_matches_task_definition(binary, containers):
    td, c = containers[CONTAINER_OF[binary]]
    found = instructions(binary)
    assert [arg for w, arg in found if w == "FROM"] == ["scratch"], "the FROM scratch path builds here without a base image"
    check_image(found, f"Dockerfile.{binary}", binary, c, td)
    assert not any(w == "RUN" for w, _ in found), "no shell in the image to RUN with"


@pytest.mark.parametrize("binary", sorted(CONTAINER_OF))
def test_multistage_dockerfile_matches_task_definition(binary, containers):
    td, c = containers[CONTAINER_OF[binary]]
    found = stage(binary)
    check_image(found, f"Dockerfile --target {binary}", binary, c, td)
    froms = [a for w, a in found if w == "FROM"]
    assert froms[0].startswith("gcr.io/distroless/cc-debian12:nonroot"), "minimal non-root runtime"
    assert not any(w == "RUN" for w, _ in found), "the runtime stages have no shell"


def test_multistage_dockerfile_caches_dependencies_of_every_member():
    """The dependency layer copies every workspace member's Cargo.toml (a member it misses
    breaks the build), before the sources."""
    members = re.search(r"members = \[([^\]]*)\]", (REPO / "Cargo.toml").read_text()).group(1)
    members = {m.strip().strip('"') for m in members.split(",") if m.strip()}
    found = parse(IMAGES / "Dockerfile")
    copies = [a for w, a in found if w == "COPY"]
    manifests = {a.split()[0].split("/")[0] for a in copies if a.split()[0].endswith("/Cargo.toml")}
    assert manifests == members
    assert copies.index("Cargo.toml Cargo.lock ./") < copies.index(". .")
    # ... and every member gets the stub sources that layer builds with (and loses them after),
    # and its real sources' times refreshed after `COPY . .`: a member missing from one of these
    # lists breaks the build or ships the stub.
    runs = [a for w, a in found if w == "RUN"]
    stubbed = re.search(r"for crate in ([^;]+);", "\n".join(runs)).group(1).split()
    removed = re.search(r"rm -rf ((?:\S+/src\b\s*)+)", "\n".join(runs)).group(1).split()
    touched = re.search(r"find (.+?) -name ", "\n".join(runs)).group(1).split()
    assert set(stubbed) == members
    assert {r.removesuffix("/src") for r in removed} == members
    assert set(touched) == members


def test_multistage_dockerfile_copies_the_patched_crates_before_the_dependency_build():
    """A `[patch.crates-io]` path is a dependency the dependency layer builds: its directory is
    copied whole before that build, or cargo cannot load the workspace there."""
    manifest = (REPO / "Cargo.toml").read_text()
    patch = manifest.split("[patch.crates-io]", 1)[1].split("\n[", 1)[0] if "[patch.crates-io]" in manifest else ""
    paths = set(re.findall(r'path\s*=\s*"([^"]+)"', patch))
    found = parse(IMAGES / "Dockerfile")
    copies = [a for w, a in found if w == "COPY"]
    before_build = copies[: copies.index(". .")]
    copied = {a.split()[0].rstrip("/") for a in before_build}
    for path in paths:
        top = path.split("/")[0]
        assert path in copied or top in copied, f"{path} is not copied before the dependency build"


def test_gateway_images_carry_its_config(containers):
    _, gw = containers["gateway"]
    path = env(gw)["SIDECAR_CONFIG"]
    for found in (instructions("gateway"), stage("gateway")):
        assert f"sidecar.toml {path}" in [a for w, a in found if w == "COPY"]
        assert f"SIDECAR_CONFIG={path}" in [a for w, a in found if w == "ENV"]


def test_image_names_are_the_ecr_repositories(bootstrap):
    script = (IMAGES / "images.sh").read_text()
    declared = dict(re.findall(r"\[([a-z-]+)\]=\$IMAGE_PREFIX-([a-z-]+)", script))
    # The repositories images are pushed to (the collector's is a pull-through cache: test_tracing.py).
    repos = {r["Properties"]["RepositoryName"]["Fn::Sub"] for n, r in of_type(bootstrap["Resources"], "AWS::ECR::Repository").items()
             if n != "CollectorRepository"}
    assert set(declared) == set(CONTAINER_OF)
    assert {f"${{NamePrefix}}-{suffix}" for suffix in declared.values()} == repos
    deploy_images = (ECS_DIR / "deploy" / "images.sh").read_text()
    assert dict(re.findall(r"\[([a-z-]+)\]=([a-z-]+)", deploy_images.split("REPO_SUFFIX=(", 1)[1].split(")", 1)[0])) == declared
    assert "buildah bud --isolation chroot" in script


@pytest.mark.parametrize("script", ["check.sh", "images/images.sh", "deploy.sh", "deploy/stacks.sh", "deploy/images.sh", "deploy/smoke.sh",
                                    "deploy/signing_key.sh"])
def test_scripts_parse(script):
    subprocess.run(["bash", "-n", str(ECS_DIR / script)], check=True)
