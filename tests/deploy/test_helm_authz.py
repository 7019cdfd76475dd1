"""Authz mode (external authorization): a Deployment and a Service on the decision port; the rendered
config.yaml opens that port and loads in authproxy itself."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from authproxy.config import load_with_warnings
from authproxy.config.model import Address

CHART = Path(__file__).resolve().parents[2] / "helm" / "authproxy"
AUTHZ = CHART / "ci" / "authz-values.yaml"
MINIMAL = CHART / "examples" / "minimal-values.yaml"

Render = Callable[..., Any]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container["env"] if "value" in item}


def test_authz_renders_deployment_service_configmap_and_pdb(render: Render) -> None:
    assert render(MINIMAL, sets=("mode=authz",)).installed().kinds() == [
        "ConfigMap",
        "Deployment",
        "PodDisruptionBudget",
        "Service",
    ]
    assert render(AUTHZ).installed().kinds() == [
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Secret",
        "Service",
    ]


def test_service_exposes_only_the_decision_port(render: Render) -> None:
    manifests = render(MINIMAL, sets=("mode=authz",))
    service = manifests.installed().one("Service")
    assert [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        ("authz", 9191, "authproxy-authz")
    ]
    assert service["spec"]["selector"] == manifests.pod()["metadata"]["labels"]


def test_container_opens_the_decision_port_from_env(render: Render) -> None:
    container = render(MINIMAL, sets=("mode=authz", "ports.authz=19191")).container()
    assert env_of(container)["AUTHPROXY_AUTHZ_LISTEN"] == "0.0.0.0:19191"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["authproxy-authz"] == 19191


def test_gateway_and_sidecar_modes_open_no_decision_port(render: Render) -> None:
    gateway = render(MINIMAL)
    assert "AUTHPROXY_AUTHZ_LISTEN" not in env_of(gateway.container())
    assert "authz_listen" not in gateway.config()
    # the authz values section belongs to authz mode only
    assert "authz" not in render(MINIMAL, sets=("authz.path_prefix=/x",)).config()


def test_rendered_config_loads_with_the_decision_port_and_prefix(render: Render, tmp_path: Path) -> None:
    config = render(AUTHZ).config()
    assert config["authz_listen"] == "${AUTHPROXY_AUTHZ_LISTEN}"
    assert config["authz"] == yaml.safe_load(AUTHZ.read_text())["authz"]
    # the key file the pod mounts, written where this test can read it
    secret = tmp_path / "jwt-secret"
    secret.write_text(yaml.safe_load(AUTHZ.read_text())["keys"]["inline"]["jwt-secret"])
    config["jwt"]["keys"] = [{"secret_file": str(secret)}]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    env = env_of(render(AUTHZ).container())
    loaded, _ = load_with_warnings(path, env)
    assert loaded.authz.listen == Address("0.0.0.0", 9191)
    assert loaded.authz.path_prefix == "/ext-authz"


@pytest.mark.parametrize("prefix", ["/a/../b", "/a/.", "envoy", "/envoy/", "/nginx", "/forward-auth/x"])
def test_unsafe_path_prefix_is_refused_by_the_schema(helm_refuses: Callable[..., str], prefix: str) -> None:
    assert "path_prefix" in helm_refuses(MINIMAL, sets=("mode=authz", f"authz.path_prefix={prefix}"))


def test_plain_path_prefix_renders(render: Render) -> None:
    assert render(MINIMAL, sets=("mode=authz", "authz.path_prefix=/nginx-x/v1.0")).config()["authz"] == {
        "path_prefix": "/nginx-x/v1.0"
    }
