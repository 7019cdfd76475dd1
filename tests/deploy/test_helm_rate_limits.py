"""Rate limits in the chart: `rateLimits.config` becomes the `rate_limits` section, the Redis URL comes
from a value or a Secret as container env, and what renders is a config authproxy itself accepts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from authproxy.config import load_text

CHART = Path(__file__).resolve().parents[2] / "helm" / "authproxy"
RATE_LIMITS = CHART / "ci" / "gateway-rate-limits-values.yaml"
MINIMAL = CHART / "examples" / "minimal-values.yaml"

Render = Callable[..., Any]


def backend_env(container: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for item in container["env"] if item["name"] == "AUTHPROXY_RATE_LIMIT_BACKEND"]


def test_limits_render_as_the_rate_limits_section_with_the_backend_from_env(render: Render) -> None:
    values = yaml.safe_load(RATE_LIMITS.read_text())["rateLimits"]
    manifests = render(RATE_LIMITS)
    assert manifests.config()["rate_limits"] == {
        **values["config"],
        "backend": "${AUTHPROXY_RATE_LIMIT_BACKEND}",
    }
    assert backend_env(manifests.container()) == [
        {
            "name": "AUTHPROXY_RATE_LIMIT_BACKEND",
            "valueFrom": {"secretKeyRef": {"name": "authproxy-redis", "key": "url"}},
        }
    ]


def test_the_rendered_config_is_one_authproxy_accepts(render: Render, tmp_path: Path) -> None:
    config = render(RATE_LIMITS).config()
    # The key file lives only in the pod: an inline secret stands in for it here.
    config["jwt"]["keys"] = [{"secret": "deploy-test-secret-0123456789abcdef0123"}]
    env = {
        "AUTHPROXY_LISTEN": "0.0.0.0:8080",
        "AUTHPROXY_ADMIN_LISTEN": "0.0.0.0:9901",
        "AUTHPROXY_UPSTREAM_URL": "http://agentos:7777",
        "AUTHPROXY_UPSTREAM_CONNECT_TIMEOUT": "5s",
        "AUTHPROXY_UPSTREAM_READ_TIMEOUT": "300s",
        "AUTHPROXY_RATE_LIMIT_BACKEND": "redis://:secret@redis.cache:6379/0",
    }
    loaded = load_text(yaml.safe_dump(config), str(tmp_path / "config.yaml"), env)
    limits = loaded.rate_limits
    assert limits is not None
    assert limits.backend == "redis://:secret@redis.cache:6379/0"
    assert [rule.name for rule in limits.rules] == ["POST /agents/{agent_id}/runs", "teams:run"]


def test_a_plain_redis_url_is_a_value(render: Render) -> None:
    manifests = render(
        RATE_LIMITS, sets=("rateLimits.redisUrlSecret.name=", "rateLimits.redisUrl=redis://r:6379/0")
    )
    assert backend_env(manifests.container()) == [
        {"name": "AUTHPROXY_RATE_LIMIT_BACKEND", "value": "redis://r:6379/0"}
    ]


def test_without_redis_the_backend_stays_in_process(render: Render) -> None:
    manifests = render(RATE_LIMITS, sets=("rateLimits.redisUrlSecret.name=",))
    assert "backend" not in manifests.config()["rate_limits"]
    assert backend_env(manifests.container()) == []


def test_no_limits_by_default(render: Render) -> None:
    manifests = render(MINIMAL)
    assert "rate_limits" not in manifests.config()
    assert backend_env(manifests.container()) == []


def test_both_redis_sources_are_refused(helm_refuses: Callable[..., str]) -> None:
    error = helm_refuses(
        MINIMAL,
        sets=(
            "rateLimits.config.default=1/s",
            "rateLimits.redisUrl=redis://r",
            "rateLimits.redisUrlSecret.name=s",
        ),
    )
    assert "not both" in error


def test_redis_without_limits_is_refused(helm_refuses: Callable[..., str]) -> None:
    assert "limits nothing" in helm_refuses(MINIMAL, sets=("rateLimits.redisUrl=redis://r:6379",))


def test_backend_inside_config_and_a_bad_url_are_refused(helm_refuses: Callable[..., str]) -> None:
    assert "backend" in helm_refuses(MINIMAL, sets=("rateLimits.config.backend=memory",))
    assert "redisUrl" in helm_refuses(
        MINIMAL, sets=("rateLimits.config.default=1/s", "rateLimits.redisUrl=http://r")
    )
