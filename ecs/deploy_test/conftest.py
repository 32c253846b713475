"""Real local stand-ins for `ecs/deploy.sh up`: moto_server (the AWS APIs, with the fixes in
moto_server.py), Debian's docker-registry (the OCI registry the images are pushed to) and the
run command's local stack (its front door answers the smoke flow that the ALB answers on AWS).
Each is started on a free loopback port and stopped at the end."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ECS_DIR = Path(__file__).resolve().parents[1]
REPO = ECS_DIR.parent
VENV = Path(os.environ.get("VENV", REPO / ".venv"))
BIN_DIR = Path(os.environ.get("BIN_DIR", REPO / "target" / "debug"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what: str, check, timeout: float) -> None:
    """Polls `check` until it returns true; fails with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{what} not ready after {timeout} s")


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


class Process:
    def __init__(self, name: str, args: list[str], log: Path, **kwargs):
        self.name, self.log = name, log
        self.handle = subprocess.Popen(args, stdout=log.open("w"), stderr=subprocess.STDOUT,
                                       start_new_session=True, **kwargs)

    def stop(self, grace: float = 30) -> None:
        if self.handle.poll() is None:
            os.killpg(self.handle.pid, signal.SIGTERM)
            try:
                self.handle.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.handle.pid, signal.SIGKILL)
                self.handle.wait()


def require(tool: str) -> str:
    path = shutil.which(tool)
    if not path:
        pytest.fail(f"{tool} not found: scripts/setup.sh test installs it")
    return path


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("deploy")


@pytest.fixture(scope="session")
def moto(workdir):
    port = free_port()
    proc = Process("moto_server", [str(VENV / "bin" / "python"), str(ECS_DIR / "deploy_test" / "moto_server.py"),
                                   "-H", "127.0.0.1", "-p", str(port)], workdir / "moto.log")
    url = f"http://127.0.0.1:{port}"
    wait_until("moto_server", lambda: http_status(url + "/moto-api/") == 200, 60)
    yield {"url": url, "log": workdir / "moto.log"}
    proc.stop()


@pytest.fixture(scope="session")
def registry(workdir):
    binary = require("docker-registry")
    port = free_port()
    config = workdir / "registry.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {workdir / 'registry'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = Process("docker-registry", [binary, "serve", str(config)], workdir / "registry.log")
    wait_until("docker-registry", lambda: http_status(f"http://127.0.0.1:{port}/v2/") == 200, 30)
    yield f"127.0.0.1:{port}"
    proc.stop()


@pytest.fixture(scope="session")
def front_door(workdir):
    """The local stack (PostgreSQL, auth-svc, task-svc + gateway) behind devstack's front door."""
    devstack = BIN_DIR / "devstack"
    if not devstack.exists():
        pytest.fail(f"{devstack} missing: cargo build --workspace (the test command builds it first)")
    port = free_port()
    proc = Process("devstack", [str(devstack), "--no-build", "--no-prometheus", "--port", str(port),
                                "--auth-instances", "1", "--task-instances", "1",
                                "--sidecar-config", str(REPO / "sidecar.toml"),
                                "--gateway-grace", "1", "--service-grace", "1"],
                   workdir / "devstack.log", env={**os.environ, "TASKMGMT_BIN_DIR": str(BIN_DIR)})
    url = f"http://127.0.0.1:{port}"
    wait_until("devstack front door", lambda: http_status(url + "/tasks/health") == 200
               and http_status(url + "/auth/health") == 200, 180)
    yield url
    proc.stop(60)


def deploy_env(moto_url: str, registry: str, templates: Path) -> dict:
    """The environment `ecs/deploy.sh` runs with against the stand-ins."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ACCESS_KEY_ID": "deploytest",
        "AWS_SECRET_ACCESS_KEY": "deploytest",
        "AWS_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "REGISTRY": registry,
        "REGISTRY_TLS_VERIFY": "false",
        "TEMPLATE_DIR": str(templates),
        "BIN_DIR": str(BIN_DIR),
        "SCRATCH_NO_CARGO": "1",
        "POLL_SECS": "1",
        "SMOKE_WAIT_SECS": "60",
        "VENV": str(VENV),
        "PATH": f"{VENV / 'bin'}:{os.environ['PATH']}",
    })
    return env


def run_deploy(args: list[str], env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    """Runs ecs/deploy.sh, echoing its combined output (the test's record of what it printed)."""
    print(f"\n$ ecs/deploy.sh {' '.join(args)}", flush=True)
    result = subprocess.run([str(ECS_DIR / "deploy.sh"), *args], env=env, cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    sys.stdout.write(result.stdout)
    print(f"(exit {result.returncode})", flush=True)
    return result
