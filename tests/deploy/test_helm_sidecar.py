"""Sidecar mode: the chart renders only config and keys; the container goes into another pod."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[2] / "helm" / "authproxy"
SIDECAR = CHART / "ci" / "sidecar-values.yaml"
EXAMPLE_VALUES = CHART / "examples" / "agentos-sidecar-values.yaml"
MINIMAL = CHART / "examples" / "minimal-values.yaml"

Render = Callable[..., Any]


def test_sidecar_mode_renders_only_the_configmap_and_key_secret(render: Render) -> None:
    # ci/sidecar-values.yaml also switches autoscaling and the PDB on: neither may render.
    assert render(SIDECAR).kinds() == ["ConfigMap", "Secret"]
    assert render(MINIMAL, sets=("mode=sidecar",)).kinds() == ["ConfigMap"]


def test_sidecar_policy_configmap_content_equals_the_values_policy(render: Render) -> None:
    assert render(SIDECAR).config()["policy"] == yaml.safe_load(SIDECAR.read_text())["policy"]


def test_example_consumer_chart_lints_clean(helm_lint: Callable[..., str], consumer_chart: Path) -> None:
    assert "0 chart(s) failed" in helm_lint(EXAMPLE_VALUES, chart=consumer_chart)


def test_example_pod_runs_agentos_and_authproxy_side_by_side(
    render: Render, consumer_chart: Path, validate: Callable[[str], None]
) -> None:
    manifests = render(EXAMPLE_VALUES, chart=consumer_chart, release="agents")
    validate(manifests.text)
    assert manifests.kinds() == ["ConfigMap", "Deployment", "Service"]
    containers = manifests.pod()["spec"]["containers"]
    assert [c["name"] for c in containers] == ["agentos", "authproxy"]


def test_example_agentos_is_reachable_only_through_the_sidecar(render: Render, consumer_chart: Path) -> None:
    manifests = render(EXAMPLE_VALUES, chart=consumer_chart, release="agents")
    agentos = manifests.container("agentos")
    assert "ports" not in agentos
    assert agentos["command"][-4:] == ["--host", "127.0.0.1", "--port", "7777"]
    upstream = {e["name"]: e.get("value") for e in manifests.container()["env"]}["AUTHPROXY_UPSTREAM_URL"]
    assert upstream == "http://127.0.0.1:7777"
    service = manifests.one("Service")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["authproxy-http"]


def test_example_sidecar_mounts_the_configmap_its_chart_renders(render: Render, consumer_chart: Path) -> None:
    manifests = render(EXAMPLE_VALUES, chart=consumer_chart, release="agents")
    volumes = {v["name"]: v for v in manifests.pod()["spec"]["volumes"]}
    sources = volumes["authproxy-config"]["projected"]["sources"]
    config_map = next(s["configMap"] for s in sources if "configMap" in s)
    assert config_map["name"] == manifests.one("ConfigMap")["metadata"]["name"]
    secret = next(s["secret"] for s in sources if "secret" in s)
    assert secret["name"] == "agentos-jwt"
    assert "emptyDir" in volumes["authproxy-tmp"]
    # authproxy reads its 0440 key files through the pod's fsGroup.
    assert manifests.pod()["spec"]["securityContext"]["fsGroup"] == 10001


def test_example_policy_is_the_agentos_preset(render: Render, consumer_chart: Path) -> None:
    manifests = render(EXAMPLE_VALUES, chart=consumer_chart, release="agents")
    expected = yaml.safe_load(EXAMPLE_VALUES.read_text())["authproxy"]["policy"]
    assert manifests.config()["policy"] == expected
    assert expected["preset"] == "agentos"


def test_sidecar_container_is_the_gateway_container(
    render: Render, consumer_chart: Path, tmp_path: Path
) -> None:
    # One template serves both modes, so the sidecar gets every hardening the gateway has.
    sidecar = render(EXAMPLE_VALUES, chart=consumer_chart, release="agents").container()
    example = yaml.safe_load(EXAMPLE_VALUES.read_text())["authproxy"]
    example_file = tmp_path / "gateway-values.yaml"
    example_file.write_text(yaml.safe_dump({**example, "mode": "gateway"}))
    gateway = render(example_file, release="agents").container()
    assert sidecar == gateway


def test_example_pod_outlasts_the_sidecar_drain(render: Render, consumer_chart: Path) -> None:
    manifests = render(EXAMPLE_VALUES, chart=consumer_chart, release="agents")
    values = yaml.safe_load(EXAMPLE_VALUES.read_text())["authproxy"]
    drain = values["shutdownGraceSeconds"] + values["preStopSleepSeconds"]
    assert manifests.pod()["spec"]["terminationGracePeriodSeconds"] > drain


def test_inline_keys_give_the_sidecar_pod_a_checksum_annotation(render: Render, consumer_chart: Path) -> None:
    inline = ("authproxy.keys.existingSecret=", "authproxy.keys.inline.jwt-secret=s")
    manifests = render(EXAMPLE_VALUES, chart=consumer_chart, release="agents", sets=inline)
    annotations = manifests.pod()["metadata"]["annotations"]
    assert list(annotations) == ["checksum/keys"]
    assert (
        "annotations" not in render(EXAMPLE_VALUES, chart=consumer_chart, release="agents").pod()["metadata"]
    )
