"""The chart as a whole: strict lint, Kubernetes schema validation of every rendering, refusals."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "authproxy"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
MINIMAL = CHART / "examples" / "minimal-values.yaml"

# Every mode on the minimal values, then every ci/ edge-values file: (values files, --set assignments).
CASES = [
    pytest.param((MINIMAL,), (), id="gateway-minimal"),
    pytest.param((MINIMAL,), ("mode=sidecar",), id="sidecar-minimal"),
    pytest.param((MINIMAL,), ("mode=authz",), id="authz-minimal"),
    *(pytest.param((path,), (), id=path.stem) for path in CI_VALUES),
]


def test_ci_edge_values_cover_every_mode() -> None:
    modes = {yaml.safe_load(path.read_text()).get("mode", "gateway") for path in CI_VALUES}
    assert modes == {"gateway", "sidecar", "authz"}


@pytest.mark.parametrize(("values", "sets"), CASES)
def test_chart_lints_clean_in_strict_mode(
    helm_lint: Callable[..., str], values: tuple[Path, ...], sets: tuple[str, ...]
) -> None:
    assert "0 chart(s) failed" in helm_lint(*values, sets=sets)


@pytest.mark.parametrize(("values", "sets"), CASES)
def test_rendered_manifests_pass_strict_kubernetes_validation(
    helm_template: Callable[..., str],
    validate: Callable[[str], None],
    values: tuple[Path, ...],
    sets: tuple[str, ...],
) -> None:
    validate(helm_template(*values, sets=sets))


def test_long_release_name_keeps_object_names_within_63_characters(render: Callable[..., Any]) -> None:
    longest_release = "r" * 53  # Helm's own limit
    manifests = render(
        MINIMAL, release=longest_release, sets=("keys.existingSecret=", "keys.inline.jwt-secret=x")
    )
    assert manifests.kinds() == [
        "ConfigMap",
        "Deployment",
        "Pod",  # helm test
        "PodDisruptionBudget",
        "Secret",
        "Service",
        "Service",  # helm test: the admin port
    ]
    for doc in manifests.docs:
        assert len(doc["metadata"]["name"]) <= 63


def test_chart_app_version_image_tag_and_package_version_agree() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == values["image"]["tag"] == project["version"]


def test_unknown_value_key_is_refused(helm_refuses: Callable[..., str]) -> None:
    assert "typo" in helm_refuses(MINIMAL, sets=("typo=1",))


def test_unknown_mode_is_refused(helm_refuses: Callable[..., str]) -> None:
    assert "mode" in helm_refuses(MINIMAL, sets=("mode=daemonset",))


def test_algorithm_none_is_refused(helm_refuses: Callable[..., str]) -> None:
    assert "jwt.algorithms" in helm_refuses(MINIMAL, sets=("jwt.algorithms[0]=none",))


def test_misspelt_policy_key_is_refused(helm_refuses: Callable[..., str]) -> None:
    assert "unmaped" in helm_refuses(MINIMAL, sets=("policy.unmaped=deny",))


def test_upstream_url_without_scheme_is_refused(helm_refuses: Callable[..., str]) -> None:
    assert "upstream.url" in helm_refuses(MINIMAL, sets=("upstream.url=agentos:7777",))


def test_termination_grace_not_above_drain_time_is_refused(helm_refuses: Callable[..., str]) -> None:
    error = helm_refuses(
        MINIMAL, sets=("terminationGracePeriodSeconds=30", "shutdownGraceSeconds=25", "preStopSleepSeconds=5")
    )
    assert "terminationGracePeriodSeconds" in error


def test_termination_grace_not_above_drain_time_is_refused_in_sidecar_mode(
    helm_refuses: Callable[..., str],
) -> None:
    assert "terminationGracePeriodSeconds" in helm_refuses(
        MINIMAL, sets=("mode=sidecar", "terminationGracePeriodSeconds=20")
    )


def test_existing_and_inline_keys_together_are_refused(helm_refuses: Callable[..., str]) -> None:
    assert "not both" in helm_refuses(MINIMAL, sets=("keys.existingSecret=idp", "keys.inline.jwt-secret=x"))


def test_key_file_missing_from_the_secret_is_refused(helm_refuses: Callable[..., str]) -> None:
    assert "no such entry in the key Secret" in helm_refuses(
        MINIMAL, sets=("keys.existingSecret=", "keys.inline.other-name=x")
    )


def test_autoscaling_without_cpu_request_is_refused(helm_refuses: Callable[..., str]) -> None:
    assert "resources.requests.cpu" in helm_refuses(
        MINIMAL, sets=("autoscaling.enabled=true", "resources.requests=null")
    )


def test_autoscaling_min_above_max_is_refused(helm_refuses: Callable[..., str]) -> None:
    error = helm_refuses(
        MINIMAL, sets=("autoscaling.enabled=true", "autoscaling.minReplicas=5", "autoscaling.maxReplicas=2")
    )
    assert "minReplicas" in error
