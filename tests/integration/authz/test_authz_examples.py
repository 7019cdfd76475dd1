"""The shipped examples (deploy/examples/authz) agree with each other, with the chart and with authproxy:
Envoy, nginx and Traefik run them in test_authz_engines.py; Istio cannot run here, so its provider is held to
the Envoy example it generates."""

from __future__ import annotations

import re
from typing import Any

import yaml

from authproxy.config.authz import FORWARD_AUTH_PATH, NGINX_PATH
from authproxy.config.model import Address
from authproxy.runtime import load_runtime
from tests.rigs.authz_engines import EXAMPLES, REPO


def documents(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((EXAMPLES / name).read_text()) if doc]


def ext_authz() -> dict[str, Any]:
    hcm = documents("envoy.yaml")[0]["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    filters = hcm["typed_config"]["http_filters"]
    return next(f["typed_config"] for f in filters if f["name"] == "envoy.filters.http.ext_authz")


def exact(patterns: list[dict[str, Any]]) -> list[str]:
    return [p["exact"] for p in patterns]


def test_example_authproxy_config_loads_with_its_decision_port() -> None:
    runtime = load_runtime(EXAMPLES / "authproxy.yaml")
    assert runtime.config.authz.listen == Address("0.0.0.0", 9191)
    assert runtime.config.authz.path_prefix == "/envoy"
    chart = yaml.safe_load((REPO / "helm" / "authproxy" / "values.yaml").read_text())
    assert chart["ports"]["authz"] == runtime.config.authz.listen.port


def test_istio_provider_matches_the_envoy_example_and_authproxy() -> None:
    runtime = load_runtime(EXAMPLES / "authproxy.yaml")
    operator, policy = documents("istio.yaml")
    provider = operator["spec"]["meshConfig"]["extensionProviders"][0]
    http = provider["envoyExtAuthzHttp"]
    envoy = ext_authz()
    assert http["pathPrefix"] == envoy["http_service"]["path_prefix"] == runtime.config.authz.path_prefix
    assert runtime.config.authz.listen is not None
    assert http["port"] == runtime.config.authz.listen.port
    identity = [name.lower() for _, name in runtime.config.forward.identity_headers]
    response = envoy["http_service"]["authorization_response"]
    assert (
        http["headersToUpstreamOnAllow"]
        == exact(response["allowed_upstream_headers"]["patterns"])
        == identity
    )
    assert http["headersToDownstreamOnDeny"] == exact(response["allowed_client_headers"]["patterns"])
    assert http["includeRequestHeadersInCheck"] == exact(envoy["allowed_headers"]["patterns"])
    assert http["failOpen"] is False and envoy["failure_mode_allow"] is False
    assert policy["spec"]["action"] == "CUSTOM"
    assert policy["spec"]["provider"]["name"] == provider["name"]


def test_traefik_middleware_crd_matches_the_tested_file_provider_config() -> None:
    tested = documents("traefik.yaml")[0]["http"]["middlewares"]["authproxy"]["forwardAuth"]
    crd = documents("traefik-middleware.yaml")[0]["spec"]["forwardAuth"]
    assert {k: v for k, v in crd.items() if k != "address"} == {
        k: v for k, v in tested.items() if k != "address"
    }
    assert crd["address"].endswith(":9191" + FORWARD_AUTH_PATH)
    assert tested["address"].endswith(FORWARD_AUTH_PATH)


def test_nginx_snippet_asks_the_nginx_endpoint_with_its_own_headers() -> None:
    snippet = (EXAMPLES / "nginx.conf").read_text()
    assert re.search(rf"proxy_pass http://authproxy_authz{NGINX_PATH};", snippet)
    assert "proxy_set_header X-Original-Method $request_method;" in snippet
    assert "proxy_set_header X-Original-URI $request_uri;" in snippet
