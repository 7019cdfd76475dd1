"""The chart's TLS, tracing and monitoring values: certificates come from Secrets mounted in the
projected config volume (so a renewed Secret reaches the running process), the rendered config.yaml
names them and loads in authproxy with real certificates at those paths, OTEL_* env turns tracing on,
and the dashboard and alert rules ship as labelled ConfigMaps equal to the files in the chart."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from authproxy.config import load_with_warnings
from tests.rigs.certs import Pki

CHART = Path(__file__).resolve().parents[2] / "helm" / "authproxy"
TLS_VALUES = CHART / "ci" / "gateway-tls-tracing-values.yaml"
MINIMAL = CHART / "examples" / "minimal-values.yaml"
INLINE_KEY = ("keys.existingSecret=", "keys.inline.jwt-secret=x")

Render = Callable[..., Any]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container["env"] if "value" in item}


def proxy_config(manifests: Any) -> dict[str, Any]:
    """config.yaml of the chart's own ConfigMap (the monitoring ConfigMaps sit beside it)."""
    [config_map] = [m for m in manifests.all("ConfigMap") if "config.yaml" in m["data"]]
    config: dict[str, Any] = yaml.safe_load(config_map["data"]["config.yaml"])
    return config


def secret_sources(manifests: Any) -> dict[str, dict[str, int]]:
    """Secret name -> {path in the volume: mode} of the projected config volume."""
    volumes = {v["name"]: v for v in manifests.pod()["spec"]["volumes"]}
    sources = volumes["authproxy-config"]["projected"]["sources"]
    return {
        s["secret"]["name"]: {item["path"]: item["mode"] for item in s["secret"]["items"]}
        for s in sources
        if "secret" in s
    }


def test_tls_secrets_are_mounted_beside_the_config_without_subpath(render: Render) -> None:
    manifests = render(TLS_VALUES)
    sources = secret_sources(manifests)
    assert sources["authproxy-tls"] == {"tls/tls.crt": 0o440, "tls/tls.key": 0o440, "tls/ca.crt": 0o440}
    assert sources["agentos-client-tls"] == {
        "upstream-tls/ca.crt": 0o440,
        "upstream-tls/tls.crt": 0o440,
        "upstream-tls/tls.key": 0o440,
    }
    mounts = manifests.container()["volumeMounts"]
    assert all("subPath" not in mount for mount in mounts)


def test_rendered_config_names_the_mounted_files_and_loads_with_real_certificates(
    render: Render, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = proxy_config(render(TLS_VALUES))
    assert config["tls"] == {
        "cert_file": "/etc/authproxy/tls/tls.crt",
        "key_file": "/etc/authproxy/tls/tls.key",
        "client_ca_file": "/etc/authproxy/tls/ca.crt",
        "client_auth": "required",
    }
    assert config["upstream"]["tls"] == {
        "ca_file": "/etc/authproxy/upstream-tls/ca.crt",
        "server_name": "agentos.internal",
        "cert_file": "/etc/authproxy/upstream-tls/tls.crt",
        "key_file": "/etc/authproxy/upstream-tls/tls.key",
    }
    # The files the Secrets put there, made for real, under a stand-in for /etc/authproxy.
    pki = Pki.create(tmp_path / "pki")
    root = tmp_path / "etc-authproxy"
    for directory, cert in (("tls", pki.server), ("upstream-tls", pki.client)):
        (root / directory).mkdir(parents=True)
        shutil.copy(cert.cert_file, root / directory / "tls.crt")
        shutil.copy(cert.key_file, root / directory / "tls.key")
        shutil.copy(pki.ca.cert_file, root / directory / "ca.crt")
    (root / "keys").mkdir()
    (root / "keys" / "jwt-secret").write_text("an-inline-secret-of-32-bytes-long")
    text = yaml.safe_dump(config).replace("/etc/authproxy/", f"{root}/")
    path = tmp_path / "config.yaml"
    path.write_text(text)
    env = env_of(render(TLS_VALUES).container())
    loaded, _ = load_with_warnings(str(path), {**os.environ, **env})
    assert loaded.tls is not None and loaded.tls.client_auth == "required"
    assert loaded.upstream.url == "https://agentos.agents.svc:8443"
    assert loaded.upstream.tls is not None and loaded.upstream.tls.server_name == "agentos.internal"


def test_tracing_values_become_otel_env(render: Render) -> None:
    env = env_of(render(TLS_VALUES).container())
    assert {k: v for k, v in env.items() if k.startswith("OTEL_")} == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.observability:4318",
        "OTEL_SERVICE_NAME": "authproxy-edge",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.25",
    }


def test_defaults_have_no_tls_no_tracing_and_no_monitoring_configmaps(render: Render) -> None:
    manifests = render(MINIMAL, sets=INLINE_KEY)
    config = manifests.config()
    assert "tls" not in config and "tls" not in config["upstream"]
    assert not [k for k in env_of(manifests.container()) if k.startswith("OTEL_")]
    assert [m["metadata"]["name"] for m in manifests.all("ConfigMap")] == ["t-authproxy"]
    assert list(secret_sources(manifests)) == ["t-authproxy-keys"]


def test_dashboard_and_rules_ship_as_labelled_configmaps_equal_to_the_chart_files(render: Render) -> None:
    maps = {m["metadata"]["name"]: m for m in render(TLS_VALUES).all("ConfigMap")}
    dashboard, rules = maps["t-authproxy-dashboard"], maps["t-authproxy-alerts"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert (
        rules["metadata"]["labels"]["prometheus_rule"] == "1"
        and rules["metadata"]["labels"]["team"] == "platform"
    )
    shipped = json.loads((CHART / "files" / "grafana-dashboard.json").read_text())
    assert json.loads(dashboard["data"]["authproxy.json"]) == shipped
    rule_file = yaml.safe_load((CHART / "files" / "prometheus-rules.yaml").read_text())
    assert yaml.safe_load(rules["data"]["authproxy-rules.yaml"]) == rule_file


@pytest.mark.parametrize(
    ("assignments", "message"),
    [
        (("tls.clientAuth=required",), "tls.clientAuth needs tls.secretName"),
        (("upstreamTls.secretName=ca",), "upstreamTls needs an https:// upstream.url"),
        (
            ("upstream.url=https://up:8443", "upstreamTls.clientCertificate=true"),
            "upstreamTls.clientCertificate needs upstreamTls.secretName",
        ),
        (("tls.clientAuth=sometimes",), "tls.clientAuth"),
        (("tracing.otlpEndpoint=otel:4318",), "tracing.otlpEndpoint"),
    ],
)
def test_inconsistent_tls_and_tracing_values_are_refused(
    helm_refuses: Callable[..., str], assignments: tuple[str, ...], message: str
) -> None:
    assert message in helm_refuses(MINIMAL, sets=(*INLINE_KEY, *assignments))
