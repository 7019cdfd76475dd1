"""Tools and renderers for the deploy checks: helm, kubernetes-validate, hadolint.

The tools come from `make tools` (scripts/install-tools.sh) into .tools/bin, which `make pytest`
puts on PATH; a bare `pytest` finds them there too. A missing tool skips with a loud reason on a
developer machine and fails under CI=true, where the install script must have provided it.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "authproxy"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
# The least the chart renders with (documented for users): the base of renderings that test one setting.
MINIMAL = CHART / "examples" / "minimal-values.yaml"
# What a rendered Secret cannot show: the content of keys.existingSecret, which the operator creates.
STAND_IN_SECRET = "a-stand-in-for-the-secret-you-create-0123456789"
KUBE_VERSION = "1.30.0"  # the oldest Kubernetes still in common support when this was written
NAMESPACE = "agents"


def unavailable(reason: str) -> NoReturn:
    """Skip loudly where a tool may be absent; under CI=true every tool is required, so fail."""
    message = f"DEPLOY CHECK NOT RUN: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: tools must be installed by `make tools`)", pytrace=False)
    pytest.skip(message)


def find_tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=str(REPO / ".tools" / "bin"))
    if path is None:
        unavailable(f"`{name}` is not on PATH or in .tools/bin; run `make tools`")
    return path


def run(args: Sequence[str], *, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


class Manifests:
    """One `helm template` result, parsed, with the lookups the assertions need."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.docs: list[dict[str, Any]] = [doc for doc in yaml.safe_load_all(text) if doc]

    def kinds(self) -> list[str]:
        return sorted(doc["kind"] for doc in self.docs)

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def one(self, kind: str) -> dict[str, Any]:
        found = self.all(kind)
        assert len(found) == 1, f"expected one {kind}, rendered {self.kinds()}"
        return found[0]

    def pod(self) -> dict[str, Any]:
        """The pod template (metadata + spec) of the one Deployment."""
        template: dict[str, Any] = self.one("Deployment")["spec"]["template"]
        return template

    def container(self, name: str = "authproxy") -> dict[str, Any]:
        matches: list[dict[str, Any]] = [c for c in self.pod()["spec"]["containers"] if c["name"] == name]
        assert len(matches) == 1, f"expected one container {name!r}"
        return matches[0]

    def config(self) -> dict[str, Any]:
        """authproxy's config.yaml as the ConfigMap carries it."""
        config: dict[str, Any] = yaml.safe_load(self.one("ConfigMap")["data"]["config.yaml"])
        return config

    def installed(self) -> Manifests:
        """Only what `helm install` creates: without the `helm test` hooks, which `helm test` creates."""
        kept = [doc for doc in self.docs if "helm.sh/hook" not in doc["metadata"].get("annotations", {})]
        return Manifests(yaml.safe_dump_all(kept))

    def hooks(self) -> Manifests:
        """Only the `helm test` hooks."""
        kept = [
            doc for doc in self.docs if doc["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"
        ]
        return Manifests(yaml.safe_dump_all(kept))


def lay_out(manifests: Manifests, directory: Path) -> tuple[Path, dict[str, str]]:
    """Lay out /etc/authproxy as the rendered pod sees it, under `directory`: config.yaml (its paths moved
    there) and the key files the projected volume mounts, from the rendered Secret or, for a Secret the
    operator manages, STAND_IN_SECRET. Returns the config file and the container's env values."""
    secrets = {doc["metadata"]["name"]: doc["data"] for doc in manifests.all("Secret")}
    volume = next(v for v in manifests.pod()["spec"]["volumes"] if v["name"] == "authproxy-config")
    for source in volume["projected"]["sources"]:
        secret = source.get("secret")
        for item in secret["items"] if secret else ():
            data = secrets.get(secret["name"], {}).get(item["key"])
            target = directory / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(base64.b64decode(data) if data else STAND_IN_SECRET.encode())
    [config_map] = [doc for doc in manifests.all("ConfigMap") if "config.yaml" in doc["data"]]
    text = config_map["data"]["config.yaml"].replace("/etc/authproxy/", f"{directory}/")
    config = directory / "config.yaml"
    config.write_text(text)
    env = {item["name"]: item["value"] for item in manifests.container()["env"] if "value" in item}
    return config, env


def check_config(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`authproxy check -c CONFIG` with the container's env, as the pod would run it."""
    args = [sys.executable, "-m", "authproxy", "check", "-c", str(config)]
    return subprocess.run(
        args, capture_output=True, text=True, timeout=60, check=False, env={**os.environ, **env}
    )


@pytest.fixture(scope="session")
def materialise() -> Callable[[Manifests, Path], tuple[Path, dict[str, str]]]:
    return lay_out


@pytest.fixture(scope="session")
def authproxy_check() -> Callable[[Path, dict[str, str]], subprocess.CompletedProcess[str]]:
    return check_config


@pytest.fixture(scope="session", name="unavailable")
def unavailable_fixture() -> Callable[[str], NoReturn]:
    return unavailable


@pytest.fixture(scope="session")
def run_tool() -> Callable[..., subprocess.CompletedProcess[str]]:
    return run


@pytest.fixture(scope="session")
def helm() -> str:
    return find_tool("helm")


@pytest.fixture(scope="session")
def kubernetes_validate() -> str:
    return find_tool("kubernetes-validate")


@pytest.fixture(scope="session")
def hadolint() -> str:
    return find_tool("hadolint")


@pytest.fixture(scope="session")
def helm_template(helm: str) -> Callable[..., str]:
    """`helm template` as text; `(values files…, sets=(k=v…), release=…, chart=…)`, cached per call."""

    @cache
    def template(*values: Path, sets: tuple[str, ...] = (), release: str = "t", chart: Path = CHART) -> str:
        args = [helm, "template", release, str(chart), "--namespace", NAMESPACE]
        args += ["--kube-version", KUBE_VERSION]
        for path in values:
            args += ["-f", str(path)]
        for assignment in sets:
            args += ["--set", assignment]
        return run(args).stdout

    return template


@pytest.fixture(scope="session")
def render(helm_template: Callable[..., str]) -> Callable[..., Manifests]:
    """Like helm_template, parsed."""

    def rendered(*values: Path, **options: Any) -> Manifests:
        return Manifests(helm_template(*values, **options))

    return rendered


@pytest.fixture(scope="session")
def helm_lint(helm: str) -> Callable[..., str]:
    """`helm lint --strict` with values files and --set assignments; returns its output."""

    def lint(*values: Path, sets: tuple[str, ...] = (), chart: Path = CHART) -> str:
        args = [helm, "lint", "--strict", str(chart)]
        for path in values:
            args += ["-f", str(path)]
        for assignment in sets:
            args += ["--set", assignment]
        return run(args).stdout

    return lint


@pytest.fixture(scope="session")
def validate(kubernetes_validate: str, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], None]:
    """Asserts that rendered manifests pass `kubernetes-validate --strict` for KUBE_VERSION."""

    def check(text: str) -> None:
        manifests = tmp_path_factory.mktemp("rendered") / "manifests.yaml"
        manifests.write_text(text)
        args = [kubernetes_validate, "--strict", "-k", KUBE_VERSION, "--quiet", str(manifests)]
        result = run(args, check=False)
        assert result.returncode == 0, result.stdout + result.stderr

    return check


@pytest.fixture(scope="session")
def helm_fails(helm: str) -> Callable[..., str]:
    """Runs `helm template` expecting a refusal; returns its error output."""

    def refused(*set_values: str, chart: Path = CHART) -> str:
        args = [helm, "template", "t", str(chart), "--kube-version", KUBE_VERSION]
        for assignment in set_values:
            args += ["--set", assignment]
        result = run(args, check=False)
        assert result.returncode != 0, f"helm rendered what it should refuse: {set_values}"
        return result.stderr

    return refused


@pytest.fixture(scope="session")
def helm_refuses(helm: str) -> Callable[..., str]:
    """Like helm_fails, with values files: `(values files…, sets=(k=v…), chart=…)`; returns the error."""

    def refused(*values: Path, sets: tuple[str, ...] = (), chart: Path = CHART) -> str:
        args = [helm, "template", "t", str(chart), "--kube-version", KUBE_VERSION]
        for path in values:
            args += ["-f", str(path)]
        for assignment in sets:
            args += ["--set", assignment]
        result = run(args, check=False)
        assert result.returncode != 0, f"helm rendered what it should refuse: {values} {sets}"
        return result.stderr

    return refused


@pytest.fixture(scope="session")
def consumer_chart(helm: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example AgentOS chart with the authproxy chart built in as its dependency.

    Built in a copy, so `helm dependency build` leaves nothing in the working tree.
    """
    copy = tmp_path_factory.mktemp("charts") / "authproxy"
    shutil.copytree(CHART, copy)
    consumer = copy / "examples" / "agentos-consumer"
    run([helm, "dependency", "build", str(consumer)])
    return consumer
