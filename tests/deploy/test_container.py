"""The image, built and run for real on a private Docker engine.

No registry is reachable here, so the base `python:3.11-slim-bookworm` is a debootstrap'd
Debian bookworm (python3 3.11) imported under that name, and the build installs wheels
downloaded on the host (no index). The container runs on the host network with a read-only root
filesystem, in front of an aiohttp upstream this module serves on loopback; the README's
`authproxy demo` line runs in it too.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.rigs.container import (
    ContainerProxy,
    DemoRequest,
    Docker,
    demo_requests,
    docker_cli,
    free_port,
    health,
)
from tests.rigs.polling import wait_until
from tests.rigs.threaded_upstream import ThreadedUpstream

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts" / "container"
CACHE = REPO / ".tools" / "container"
BASE_TARBALL = CACHE / "python-3.11-slim-bookworm.tar"
BASE_IMAGE = "python:3.11-slim-bookworm"
IMAGE = "authproxy:container-test"
GRACE_SECONDS = 5  # AUTHPROXY_SHUTDOWN_GRACE in the container; `docker stop` allows more

pytestmark = [pytest.mark.container, pytest.mark.timeout(900)]

CONFIG = """\
# Addresses come from the env, as in the Helm chart's config.yaml.
listen: "${AUTHPROXY_LISTEN}"
admin_listen: "${AUTHPROXY_ADMIN_LISTEN}"
upstream:
  url: "${AUTHPROXY_UPSTREAM_URL}"
jwt:
  algorithms: [HS256]
  keys:
    - secret_file: /etc/authproxy/keys/jwt-secret
policy:
  routes:
    "GET /agents": [agents:read]
    "GET /slow": [agents:read]
"""
# Only checked, never served: addresses that need not be free.
CHECK_ENV = {
    "AUTHPROXY_LISTEN": "127.0.0.1:8080",
    "AUTHPROXY_ADMIN_LISTEN": "127.0.0.1:9901",
    "AUTHPROXY_UPSTREAM_URL": "http://127.0.0.1:7777",
}
GRPC_SECTION = """\
authz:
  grpc_listen: 127.0.0.1:9192
"""
# Proxies from the environment must not carry requests meant for the container on loopback.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def lay_out_etc(etc: Path, config: str, secret: bytes) -> Path:
    """/etc/authproxy as the container mounts it: config.yaml and keys/jwt-secret, readable by uid 10001 as
    a Kubernetes projected volume would be."""
    (etc / "keys").mkdir(parents=True)
    (etc / "keys" / "jwt-secret").write_bytes(secret)
    (etc / "config.yaml").write_text(config)
    for path in (etc, etc / "keys"):
        path.chmod(0o755)
    for path in (etc / "config.yaml", etc / "keys" / "jwt-secret"):
        path.chmod(0o444)
    return etc


@pytest.fixture(scope="module")
def docker(unavailable: Callable[[str], None]) -> Iterator[Docker]:
    if os.geteuid() != 0:
        unavailable("the Docker engine needs root")
    for tool in ("dockerd", "debootstrap"):
        if shutil.which(tool) is None:
            unavailable(f"{tool} is not installed; `make tools` installs it when run as root")
    # A short path: containerd's unix sockets live under it (108-byte limit).
    state = Path(tempfile.mkdtemp(prefix="apd-", dir="/tmp"))
    try:
        started = subprocess.run(
            [str(SCRIPTS / "engine.sh"), "start", str(state)], capture_output=True, text=True, timeout=120
        )
        if started.returncode != 0:
            unavailable(f"the Docker engine did not start: {started.stderr.strip()}")
        yield Docker(docker_cli(), started.stdout.strip())
    finally:
        subprocess.run([str(SCRIPTS / "engine.sh"), "stop", str(state)], capture_output=True, timeout=120)
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def base_image(docker: Docker, unavailable: Callable[[str], None]) -> str:
    # Built once (~45 s) and cached under .tools/; `make tools` usually has done it already.
    built = subprocess.run(
        [str(SCRIPTS / "base-rootfs.sh"), str(BASE_TARBALL)], capture_output=True, text=True, timeout=600
    )
    if built.returncode != 0:
        unavailable(f"could not build the stand-in base image: {built.stderr.strip()}")
    docker("import", str(BASE_TARBALL), BASE_IMAGE)
    return BASE_IMAGE


@pytest.fixture(scope="module")
def wheels(unavailable: Callable[[str], None]) -> Path:
    """The image's wheels, downloaded on the host once per set of requirements."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    requirements = project["project"]["dependencies"] + project["build-system"]["requires"]
    # the script's own additions (the image's extras, wheels its older Python needs) count too
    fingerprint = "\n".join(requirements) + (SCRIPTS / "wheels.sh").read_text()
    cache = CACHE / f"wheels-{hashlib.sha256(fingerprint.encode()).hexdigest()[:12]}"
    if not cache.is_dir():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix="wheels-partial-", dir=CACHE))
        fetched = subprocess.run(
            [str(SCRIPTS / "wheels.sh"), str(partial)], capture_output=True, text=True, timeout=600
        )
        if fetched.returncode != 0:
            shutil.rmtree(partial)
            unavailable(f"could not download wheels for the image: {fetched.stderr.strip()[-2000:]}")
        try:
            partial.rename(cache)
        except OSError:  # a concurrent run cached the same set first
            shutil.rmtree(partial)
    return cache


@pytest.fixture(scope="module")
def image(docker: Docker, base_image: str, wheels: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    context = tmp_path_factory.mktemp("context")
    for name in ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, context / name)
    shutil.copytree(REPO / "authproxy", context / "authproxy", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(wheels, context / "wheels")
    # --pull=false: the base exists only locally; host network: the engine has no bridge.
    docker("build", "--pull=false", "--network", "host", "--tag", IMAGE, str(context), timeout=600)
    return IMAGE


@pytest.fixture(scope="module")
def upstream() -> Iterator[ThreadedUpstream]:
    with ThreadedUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def proxy(
    docker: Docker,
    image: str,
    upstream: ThreadedUpstream,
    hs_secret: bytes,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ContainerProxy]:
    etc = lay_out_etc(tmp_path_factory.mktemp("etc-authproxy"), CONFIG, hs_secret)
    port, admin_port = free_port(), free_port()
    name = f"authproxy-test-{os.getpid()}"
    env = {
        "AUTHPROXY_LISTEN": f"127.0.0.1:{port}",
        "AUTHPROXY_ADMIN_LISTEN": f"127.0.0.1:{admin_port}",
        "AUTHPROXY_UPSTREAM_URL": upstream.url,
        "AUTHPROXY_SHUTDOWN_GRACE": str(GRACE_SECONDS),
        "AUTHPROXY_HEALTHCHECK_URL": f"http://127.0.0.1:{admin_port}/healthz",
    }
    args = ["run", "--detach", "--name", name, "--network", "host", "--read-only", "--tmpfs", "/tmp"]
    args += ["--volume", f"{etc}:/etc/authproxy:ro", "--health-interval", "1s"]
    for key, value in env.items():
        args += ["--env", f"{key}={value}"]
    docker(*args, image)
    try:
        yield ContainerProxy(name, port, admin_port, docker)
    finally:
        docker("rm", "--force", name, check=False)


@pytest.fixture(scope="module")
def healthy_proxy(proxy: ContainerProxy) -> ContainerProxy:
    wait_until(lambda: health(proxy) == "healthy", "the image's HEALTHCHECK to report healthy")
    return proxy


def test_image_declares_user_ports_healthcheck_and_entrypoint(docker: Docker, image: str) -> None:
    config = docker.inspect(image)["Config"]
    assert config["User"] == "10001:10001"
    assert set(config["ExposedPorts"]) == {"8080/tcp", "9901/tcp"}
    assert config["Entrypoint"] == ["authproxy"]
    assert config["Cmd"] == ["serve", "-c", "/etc/authproxy/config.yaml"]
    assert config["Healthcheck"]["Test"][:2] == ["CMD", "python3"]


def test_healthcheck_turns_healthy(healthy_proxy: ContainerProxy) -> None:
    assert health(healthy_proxy) == "healthy"
    # The HEALTHCHECK asks /healthz (alive); /readyz follows once every worker has its keys and policy.
    wait_until(lambda: healthy_proxy.get("/readyz", admin=True)[0] == 200, "/readyz to answer 200")


def test_process_runs_as_uid_and_gid_10001(healthy_proxy: ContainerProxy) -> None:
    pid = healthy_proxy.docker.inspect(healthy_proxy.name)["State"]["Pid"]
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    ids = {line.split(":")[0]: line.split()[1:] for line in status if line.startswith(("Uid:", "Gid:"))}
    assert ids == {"Uid": ["10001"] * 4, "Gid": ["10001"] * 4}


def test_valid_token_is_forwarded_with_200(
    healthy_proxy: ContainerProxy, upstream: ThreadedUpstream, mint: Any
) -> None:
    status, body = healthy_proxy.get("/agents", mint({"sub": "alice", "scopes": ["agents:read"]}))
    assert status == 200, healthy_proxy.logs()
    assert json.loads(body) == {"path": "/agents"}
    assert "/agents" in upstream.paths()


def test_request_without_token_is_refused_with_401(
    healthy_proxy: ContainerProxy, upstream: ThreadedUpstream
) -> None:
    before = len(upstream.paths())
    status, body = healthy_proxy.get("/agents")
    assert status == 401, healthy_proxy.logs()
    assert json.loads(body)["error"] == "missing_token"
    assert len(upstream.paths()) == before


def test_token_with_short_scopes_is_refused_with_403(
    healthy_proxy: ContainerProxy, upstream: ThreadedUpstream, mint: Any
) -> None:
    before = len(upstream.paths())
    status, body = healthy_proxy.get("/agents", mint({"sub": "bob", "scopes": ["teams:read"]}))
    assert status == 403, healthy_proxy.logs()
    assert json.loads(body)["missing_scopes"] == ["agents:read"]
    assert len(upstream.paths()) == before


def demo_printed(demo: ContainerProxy) -> str:
    """What the demo has printed on stdout so far (its logs go to stderr); fails once the container exits."""
    health(demo)
    return demo.docker("logs", demo.name).stdout


def send(request: DemoRequest) -> tuple[int, bytes]:
    sent = urllib.request.Request(  # noqa: S310 - the URL is the demo's own http://127.0.0.1 line
        request.url, data=request.body, headers=request.headers, method=request.method
    )
    try:
        with DIRECT.open(sent, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read()


def test_readme_demo_line_answers_as_printed_and_turns_healthy(docker: Docker, image: str) -> None:
    # The README's `docker run --rm -p 8080:8080 IMAGE demo --listen :8080 --admin-listen 9901`. This engine
    # has no bridge to publish a port from, so the container shares the host's network, on free ports in
    # place of 8080 and 9901; AUTHPROXY_HEALTHCHECK_URL aims the HEALTHCHECK at the admin port, as its
    # default does at 9901. Read-only with a /tmp tmpfs, as the chart runs the image.
    port, admin_port = free_port(), free_port()
    name = f"authproxy-demo-{os.getpid()}"
    args = ["run", "--detach", "--name", name, "--network", "host", "--read-only", "--tmpfs", "/tmp"]
    probe = f"http://127.0.0.1:{admin_port}/healthz"
    args += ["--health-interval", "1s", "--env", f"AUTHPROXY_HEALTHCHECK_URL={probe}"]
    docker(*args, image, "demo", "--listen", f":{port}", "--admin-listen", str(admin_port))
    demo = ContainerProxy(name, port, admin_port, docker)
    try:
        wait_until(lambda: "Ctrl-C to stop." in demo_printed(demo), "the demo to print its curl lines")
        requests = demo_requests(demo_printed(demo))
        assert {request.expected for request in requests} == {200, 401, 403}, demo_printed(demo)
        for request in requests:
            # :PORT is every interface; the lines name this machine, where a published port arrives too.
            assert request.url.startswith(f"http://127.0.0.1:{port}/"), request
            assert "$" not in "".join(request.headers.values()), f"a token the demo did not export: {request}"
            status, body = send(request)
            assert status == request.expected, (request, body, demo.logs())
            if request.url.endswith("/runs") and status == 200:
                assert b"from demo-runner" in body  # the identity header the proxy set reached the upstream
        wait_until(lambda: health(demo) == "healthy", "the image's HEALTHCHECK to report the demo healthy")
    finally:
        docker("rm", "--force", name, check=False)


def test_image_carries_the_grpc_extra(docker: Docker, image: str, hs_secret: bytes, tmp_path: Path) -> None:
    modules = "import authproxy.authz.grpc_check, grpclib, envoy_data_plane"
    imported = docker(
        "run", "--rm", "--network", "none", "--entrypoint", "python3", image, "-c", modules, check=False
    )
    assert imported.returncode == 0, imported.stderr
    # authz.grpc_listen is refused at load without the extra, so `check` exiting 0 says the image serves it.
    etc = lay_out_etc(tmp_path / "etc-authproxy", CONFIG + GRPC_SECTION, hs_secret)
    args = ["run", "--rm", "--network", "none", "--read-only", "--volume", f"{etc}:/etc/authproxy:ro"]
    for key, value in CHECK_ENV.items():
        args += ["--env", f"{key}={value}"]
    checked = docker(*args, image, "check", "-c", "/etc/authproxy/config.yaml", check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # the last line is the verdict; warnings (an unset jwt.audience) come before it, none about gRPC
    assert checked.stdout.splitlines()[-1].startswith("/etc/authproxy/config.yaml: ok ("), checked.stdout
    assert "grpc" not in checked.stdout, checked.stdout


def test_docker_stop_drains_in_flight_request_and_exits_0(
    healthy_proxy: ContainerProxy, upstream: ThreadedUpstream, mint: Any
) -> None:
    # Last in this module: it ends the shared container.
    token = mint({"sub": "carol", "scopes": ["agents:read"]})
    answer: list[tuple[int, bytes]] = []
    in_flight = threading.Thread(target=lambda: answer.append(healthy_proxy.get("/slow", token)))
    in_flight.start()
    assert upstream.slow_arrived.wait(timeout=60), "the slow request never reached the upstream"
    # A stop timeout beyond the app's grace: exit code 0 then means authproxy ended itself.
    docker = healthy_proxy.docker
    stop_args = [docker.cli, "-H", docker.host, "stop", "-t", str(GRACE_SECONDS + 25), healthy_proxy.name]
    with subprocess.Popen(stop_args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as stop:
        try:
            # /readyz turns 503 once SIGTERM has reached authproxy (PID 1: exec-form ENTRYPOINT).
            wait_until(
                lambda: healthy_proxy.get("/readyz", admin=True)[0] == 503, "authproxy to start draining"
            )
        finally:
            upstream.slow_release.set()
            in_flight.join(timeout=60)
        assert answer == [(200, b'{"path": "/slow"}')]
        assert stop.wait(timeout=120) == 0
    state = docker.inspect(healthy_proxy.name)["State"]
    assert (state["Running"], state["OOMKilled"], state["ExitCode"]) == (False, False, 0), (
        healthy_proxy.logs()
    )
