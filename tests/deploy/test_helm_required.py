"""The chart fails closed: without an upstream, a policy that names routes and a key the pod can read, it
refuses to render, in every mode and through the sidecar templates, and names every missing value. The
minimal values file is enough, and the config it renders passes `authproxy check`."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

CHART = Path(__file__).resolve().parents[2] / "helm" / "authproxy"
MINIMAL = CHART / "examples" / "minimal-values.yaml"
EXAMPLE_VALUES = CHART / "examples" / "agentos-sidecar-values.yaml"
CI = CHART / "ci"

Render = Callable[..., Any]
Refuses = Callable[..., str]
Materialise = Callable[[Any, Path], tuple[Path, dict[str, str]]]
Check = Callable[[Path, dict[str, str]], subprocess.CompletedProcess[str]]


def listed(error: str) -> list[str]:
    """The problems the refusal lists, one per `  - ` line."""
    return [line.strip()[2:] for line in error.splitlines() if line.startswith("  - ")]


def values_file(directory: Path, values: dict[str, Any]) -> Path:
    path = directory / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def without_preset(directory: Path, **policy: Any) -> Path:
    """The minimal values with their policy replaced (a values file can add keys, never remove them)."""
    values = yaml.safe_load(MINIMAL.read_text())
    values["policy"] = policy
    return values_file(directory, values)


@pytest.mark.parametrize("mode", ["gateway", "sidecar", "authz"])
def test_default_values_are_refused_naming_every_missing_value(helm_refuses: Refuses, mode: str) -> None:
    problems = listed(helm_refuses(sets=(f"mode={mode}",)))
    assert [problem.split(":")[0] for problem in problems] == [
        "upstream.url",
        "policy.preset or policy.routes",
        "jwt.keys[0].secret_file /etc/authproxy/keys/jwt-secret",
    ]
    assert "no such entry in the key Secret (mounted: none" in problems[2]
    assert "keys.existingSecret" in problems[2]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("upstream.url=", "upstream.url"),
        ("keys.existingSecret=", "jwt.keys[0].secret_file"),
        (
            "jwt.keys[0].secret_file=/run/secrets/jwt-secret",
            "jwt.keys[0].secret_file /run/secrets/jwt-secret",
        ),
        ("keys.existingSecretKeys[0]=other", "jwt.keys[0].secret_file"),
    ],
)
def test_each_missing_essential_alone_is_named(helm_refuses: Refuses, change: str, named: str) -> None:
    problems = listed(helm_refuses(MINIMAL, sets=(change,)))
    assert len(problems) == 1, problems
    assert problems[0].startswith(named)


@pytest.mark.parametrize(
    "policy",
    [{}, {"admin_scope": "agent_os:admin"}, {"public": ["/docs"]}, {"routes": {}}],
    ids=["empty", "admin-scope-only", "public-only", "no-routes"],
)
def test_a_policy_that_names_no_route_is_refused(
    helm_refuses: Refuses, tmp_path: Path, policy: dict[str, Any]
) -> None:
    problems = listed(helm_refuses(without_preset(tmp_path, **policy)))
    assert len(problems) == 1, problems
    assert problems[0].startswith("policy.preset or policy.routes: a policy that names no route denies")


def test_routes_without_the_preset_render(render: Render, tmp_path: Path) -> None:
    routes = {"GET /reports": ["reports:read"]}
    assert render(without_preset(tmp_path, routes=routes)).config()["policy"] == {"routes": routes}


def test_a_key_path_relative_to_the_config_file_renders(render: Render) -> None:
    manifests = render(MINIMAL, sets=("jwt.keys[0].secret_file=keys/jwt-secret",))
    assert manifests.config()["jwt"]["keys"] == [{"secret_file": "keys/jwt-secret"}]


def test_an_empty_key_list_is_refused(helm_refuses: Refuses, tmp_path: Path) -> None:
    error = helm_refuses(MINIMAL, values_file(tmp_path, {"jwt": {"keys": []}}))
    assert [p.split(":")[0] for p in listed(error)] == ["jwt.keys"]


def test_the_default_hmac_algorithm_beside_an_issuer_is_refused(
    helm_refuses: Refuses, tmp_path: Path
) -> None:
    values = {"jwt": {"keys": [{"oidc_issuer": "https://idp.example.com"}]}, "keys": {"existingSecret": ""}}
    problems = listed(helm_refuses(MINIMAL, values_file(tmp_path, values)))
    assert problems == [
        "jwt.algorithms: HS256 cannot verify beside a public key source (jwt.keys[0].oidc_issuer); "
        "set jwt.algorithms to the IdP's, e.g. [RS256]"
    ]


def test_an_issuer_with_its_algorithm_needs_no_secret(render: Render, tmp_path: Path) -> None:
    values = {
        "jwt": {"algorithms": ["RS256"], "keys": [{"oidc_issuer": "https://idp.example.com"}]},
        "keys": {"existingSecret": ""},
    }
    manifests = render(MINIMAL, values_file(tmp_path, values))
    assert manifests.all("Secret") == []
    assert manifests.config()["jwt"]["keys"] == [{"oidc_issuer": "https://idp.example.com"}]


def test_a_public_key_algorithm_with_only_secrets_is_refused(helm_refuses: Refuses) -> None:
    problems = listed(helm_refuses(MINIMAL, sets=("jwt.algorithms[0]=RS256",)))
    assert len(problems) == 1
    assert problems[0].startswith("jwt.algorithms: RS256 need a public_key_file")


@pytest.mark.parametrize(
    "reference",
    ["${JWT_VERIFICATION_KEY}", "x-${JWT_VERIFICATION_KEY}-y"],
)
def test_an_env_reference_the_container_does_not_set_is_refused(
    helm_refuses: Refuses, tmp_path: Path, reference: str
) -> None:
    values = {"jwt": {"keys": [{"secret": reference}]}, "keys": {"existingSecret": ""}}
    problems = listed(helm_refuses(MINIMAL, values_file(tmp_path, values)))
    assert len(problems) == 1
    assert problems[0].startswith("jwt uses ${JWT_VERIFICATION_KEY}, but the container has no env")


@pytest.mark.parametrize(
    ("reference", "env"),
    [
        ("${JWT_VERIFICATION_KEY}", [{"name": "JWT_VERIFICATION_KEY", "value": "s" * 32}]),
        ("${JWT_VERIFICATION_KEY:-a-default-secret-of-32-bytes-long}", []),
        ("$${JWT_VERIFICATION_KEY}", []),  # a literal "${", not a reference
    ],
)
def test_env_references_the_pod_can_resolve_render(
    render: Render, tmp_path: Path, reference: str, env: list[dict[str, str]]
) -> None:
    values = {"jwt": {"keys": [{"secret": reference}]}, "keys": {"existingSecret": ""}, "env": env}
    assert render(MINIMAL, values_file(tmp_path, values)).config()["jwt"]["keys"] == [{"secret": reference}]


# --- sidecar mode: the parent chart's pod fails as loudly as this chart ----------------------------------


@pytest.fixture(scope="module")
def probe_chart(helm: str, run_tool: Callable[..., Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example consumer chart plus a template that includes one sidecar template (named by the value
    `probe`) with values whose policy is empty, while the authproxy subchart itself gets valid values."""
    copy = tmp_path_factory.mktemp("probe") / "authproxy"
    shutil.copytree(CHART, copy)
    consumer = copy / "examples" / "agentos-consumer"
    (consumer / "templates" / "probe.yaml").write_text(
        "{{- if .Values.probe }}\n"
        '{{- $broken := set (deepCopy .Values.authproxy) "policy" dict }}\n'
        '{{- include (printf "authproxy.%s" .Values.probe) (dict "Values" $broken "Release" .Release) }}\n'
        "{{- end }}\n"
    )
    run_tool([helm, "dependency", "build", str(consumer)])
    return consumer


@pytest.mark.parametrize("template", ["sidecarContainer", "sidecarVolumes"])
def test_sidecar_templates_refuse_a_pod_without_a_policy(
    helm_refuses: Refuses, render: Render, probe_chart: Path, template: str
) -> None:
    render(EXAMPLE_VALUES, chart=probe_chart)  # the control: valid values render
    error = helm_refuses(EXAMPLE_VALUES, sets=(f"probe={template}",), chart=probe_chart)
    assert "templates/probe.yaml" in error
    assert [p.split(":")[0] for p in listed(error)] == ["policy.preset or policy.routes"]


def test_consumer_chart_without_policy_and_keys_is_refused(
    helm_refuses: Refuses, consumer_chart: Path
) -> None:
    problems = listed(helm_refuses(chart=consumer_chart))
    assert [p.split(":")[0] for p in problems] == [
        "policy.preset or policy.routes",
        "jwt.keys[0].secret_file /etc/authproxy/keys/jwt-secret",
    ]


# --- what renders is what authproxy accepts -------------------------------------------------------------


def test_minimal_values_file_sets_only_the_essentials() -> None:
    values = yaml.safe_load(MINIMAL.read_text())
    assert sorted(values) == ["keys", "policy", "upstream"]
    assert values["policy"]["preset"] == "agentos"


def sidecar_values(directory: Path, base: Path) -> Path:
    """`base` (this chart's values) nested for the consumer chart, in sidecar mode on loopback."""
    authproxy = {**yaml.safe_load(base.read_text()), "mode": "sidecar"}
    authproxy["upstream"] = {"url": "http://127.0.0.1:7777"}
    return values_file(directory, {"authproxy": authproxy})


@pytest.mark.parametrize(
    ("values", "sets"),
    [
        pytest.param((MINIMAL,), (), id="minimal-gateway"),
        pytest.param((MINIMAL,), ("mode=authz",), id="minimal-authz"),
        pytest.param((CI / "gateway-autoscaling-values.yaml",), (), id="gateway-autoscaling"),
        pytest.param((CI / "authz-values.yaml",), (), id="authz"),
    ],
)
def test_rendered_config_passes_authproxy_check(
    render: Render,
    materialise: Materialise,
    authproxy_check: Check,
    tmp_path: Path,
    values: tuple[Path, ...],
    sets: tuple[str, ...],
) -> None:
    config, env = materialise(render(*values, sets=sets), tmp_path)
    result = authproxy_check(config, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{config}: ok" in result.stdout


@pytest.mark.parametrize("base", [MINIMAL, EXAMPLE_VALUES], ids=["minimal", "agentos-example"])
def test_rendered_sidecar_config_passes_authproxy_check(
    render: Render,
    materialise: Materialise,
    authproxy_check: Check,
    consumer_chart: Path,
    tmp_path: Path,
    base: Path,
) -> None:
    values = EXAMPLE_VALUES if base == EXAMPLE_VALUES else sidecar_values(tmp_path, base)
    files = tmp_path / "etc"
    files.mkdir()
    config, env = materialise(render(values, chart=consumer_chart, release="agents"), files)
    result = authproxy_check(config, env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_of_a_rendering_catches_what_the_chart_cannot(
    render: Render, materialise: Materialise, authproxy_check: Check, tmp_path: Path
) -> None:
    # The control for the tests above: two routes that tie render, and `authproxy check` refuses them.
    ties = ("policy.routes.GET /a/{x}[0]=a:read", "policy.routes.GET /a/{y}[0]=a:write")
    config, env = materialise(render(MINIMAL, sets=ties), tmp_path)
    result = authproxy_check(config, env)
    assert result.returncode == 1
    assert "the same route as 'GET /a/{x}'" in result.stdout + result.stderr
