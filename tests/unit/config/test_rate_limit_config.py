"""The rate_limits section: rates, backend, Redis options, and every limit tied to policy routes."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

import pytest

from authproxy.config.limits import parse_rate
from authproxy.config.limits_model import Rate, RedisOptions

if TYPE_CHECKING:
    from tests.rigs.configdir import ConfigDir

POLICY = """\
policy:
  public: [/health]
  routes:
    "POST /agents/{agent_id}/runs": [agents:run]
    "GET /agents/{agent_id}": [agents:read]
    "POST /teams/{team_id}/runs": ["teams:{team_id}:run"]
"""  # lines 8-13; rate_limits starts on line 14


def limits(head: str, body: str) -> str:
    return head + POLICY + "rate_limits:\n" + textwrap.indent(textwrap.dedent(body), "  ")


@pytest.mark.parametrize(
    ("text", "burst", "expected"),
    [
        ("10/min", None, Rate(10, 60.0, 10, "10/min")),
        ("5/s", None, Rate(5, 1.0, 5, "5/s")),
        (" 100 / hour ", None, Rate(100, 3600.0, 100, "100/hour")),
        ("1000/day", 50, Rate(1000, 86400.0, 50, "1000/day burst 50")),
    ],
)
def test_rates(text: str, burst: int | None, expected: Rate) -> None:
    assert parse_rate(text, burst) == expected


@pytest.mark.parametrize("text", ["10", "10/fortnight", "0/min", "-1/min", "1.5/min", "ten/min", "10/"])
def test_bad_rates(text: str) -> None:
    with pytest.raises(ValueError, match=r"rate such as|count must be"):
        parse_rate(text)


def test_a_full_section(cfg: ConfigDir, head: str) -> None:
    config = cfg.config(
        limits(
            head,
            """\
            key: session_id
            backend: redis://127.0.0.1:6379/0
            redis: {timeout: 250ms, on_error: allow}
            default: 600/min
            routes:
              "POST /agents/{id}/runs": {rate: 10/min, burst: 3}
              teams:run: 20/hour
            """,
        )
    )
    rl = config.rate_limits
    assert rl is not None
    assert (rl.key, rl.backend, rl.redis) == (
        "session_id",
        "redis://127.0.0.1:6379/0",
        RedisOptions(0.25, "allow"),
    )
    assert rl.default == Rate(600, 60.0, 600, "600/min")
    runs, teams = rl.rules
    # A key is matched to the policy's rule by canonical form and reports the rule's own key.
    assert (runs.name, runs.routes, runs.rate.burst, runs.line) == (
        "POST /agents/{id}/runs",
        ("POST /agents/{agent_id}/runs",),
        3,
        20,
    )
    assert (teams.name, teams.routes) == ("teams:run", ("POST /teams/{team_id}/runs",))


def test_defaults(cfg: ConfigDir, head: str) -> None:
    rl = cfg.config(limits(head, "default: 5/s\n")).rate_limits
    assert rl is not None
    assert (rl.key, rl.backend, rl.redis, rl.rules) == ("user_id", "memory", RedisOptions(0.1, "deny"), ())
    assert cfg.config(head + POLICY).rate_limits is None


def test_every_problem_is_located(cfg: ConfigDir, head: str) -> None:
    text = limits(
        head,
        """\
        key: sub
        backend: "http://user:hunter2@cache:6379"
        redis: {timeout: 0s, on_error: maybe, pool: 3}
        default: 10/fortnight
        routes:
          "GET /agents/{x}": 5
          "GET /nowhere": 5/min
          "/health": 5/min
          agents:delete: 5/min
          "POST /agents/{a}/runs": {rate: 5/min, burst: 0}
          "GET /agents/{agent_id}": 1/s
          "GET /agents/{id}": 2/s
        """,
    )
    errors = cfg.errors(text)
    assert errors == [
        "config.yaml:15: rate_limits.key: must be one of user_id, session_id, client_ip; got 'sub'",
        "config.yaml:16: rate_limits.backend: expected memory or a redis://, rediss:// or unix:// URL",
        "config.yaml:17: rate_limits.redis.on_error: must be one of deny, allow; got 'maybe'",
        "config.yaml:17: rate_limits.redis.timeout: must be more than zero",
        "config.yaml:17: unknown key 'pool' in rate_limits.redis",
        "config.yaml:18: rate_limits.default: expected a rate such as 10/min, 5/s, 100/hour or 1000/day;"
        " got '10/fortnight'",
        'config.yaml:20: rate_limits.routes["GET /agents/{x}"]: expected a rate such as 10/min or'
        " {rate: 10/min, burst: 5}, got an integer",
        'config.yaml:21: rate_limits.routes["GET /nowhere"]: no route of the policy has this key'
        " (write it as in policy.routes)",
        'config.yaml:22: rate_limits.routes["/health"]: a public route has no caller to limit'
        " (unless key: client_ip)",
        'config.yaml:23: rate_limits.routes["agents:delete"]: no policy route requires agents:delete'
        " or agents:<id>:delete",
        'config.yaml:24: rate_limits.routes["POST /agents/{a}/runs"].burst: expected a whole number from 1'
        " to 1000000000",
        'config.yaml:26: rate_limits.routes["GET /agents/{id}"]: the same route as the limit at line 25',
    ]
    assert not any("hunter2" in error for error in errors)  # a backend URL may hold a password


def test_a_redis_url_the_client_cannot_use_is_refused_without_echoing_it(cfg: ConfigDir, head: str) -> None:
    errors = cfg.errors(limits(head, "backend: redis://:hunter2@cache:port/0\ndefault: 1/s\n"))
    assert errors == [
        "config.yaml:15: rate_limits.backend: not a valid redis:// URL (port, database or options)"
    ]


def test_warnings(cfg: ConfigDir, head: str) -> None:
    assert cfg.warnings(limits(head, "key: user_id\n")) == [
        "config.yaml:14: rate_limits: no default and no routes, so nothing is limited"
    ]
    warned = cfg.warnings(limits(head, "backend: redis://r:6379\nredis: {on_error: allow}\ndefault: 1/s\n"))
    assert warned == [
        "config.yaml:16: rate_limits.redis.on_error: allow forwards unlimited while Redis is down"
    ]


def test_preset_routes_can_be_limited_by_their_own_keys(cfg: ConfigDir, head: str) -> None:
    text = head + textwrap.dedent(
        """\
        policy:
          preset: agentos
        rate_limits:
          routes:
            "POST /agents/{agent_id}/runs": 10/min
            workflows:run: 5/min
        """
    )
    rl = cfg.config(text).rate_limits
    assert rl is not None
    runs, workflows = rl.rules
    assert runs.routes == ("POST /agents/{agent_id}/runs",)
    assert "POST /workflows/{workflow_id}/runs" in workflows.routes
    assert all("workflows" in route for route in workflows.routes)
