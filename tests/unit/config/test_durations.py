"""Durations: `10s`, `5m`, `1h`, `250ms` or a number of seconds; negative, zero timeouts and junk refused."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from authproxy.config.values import parse_duration

if TYPE_CHECKING:
    from tests.rigs.configdir import ConfigDir


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10s", 10.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("250ms", 0.25),
        ("1.5s", 1.5),
        ("0s", 0.0),
        ("42", 42.0),
        (" 3s ", 3.0),
        (7, 7.0),
        (2.5, 2.5),
    ],
)
def test_duration_is_read_in_seconds(text: str | int | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "10 s", "1d", "1m30s", "ten", ".5s", "5.s", "1e3s", "-"])
def test_malformed_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="expected a duration such as 10s, 5m, 1h, 250ms or a number"):
        parse_duration(text)


@pytest.mark.parametrize("value", ["-5s", "-1", -3, -0.5])
def test_negative_duration_is_refused(value: str | int | float) -> None:
    with pytest.raises(ValueError, match=r"^must not be negative$"):
        parse_duration(value)


@pytest.mark.parametrize("value", [float("inf"), float("nan"), True])
def test_non_finite_or_boolean_duration_is_refused(value: float) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(value)


def test_durations_are_read_from_the_config(cfg: ConfigDir) -> None:
    text = """\
        upstream:
          url: http://127.0.0.1:7777
          connect_timeout: 250ms
          read_timeout: 10m
        jwt:
          algorithms: [HS256]
          keys:
            - secret: 0123456789abcdef0123456789abcdef
          audience: api
          leeway: 30
        """
    config = cfg.config(text)
    assert (config.upstream.connect_timeout, config.upstream.read_timeout) == (0.25, 600.0)
    assert config.jwt.leeway == 30.0


def test_bad_durations_in_the_config_are_all_reported(cfg: ConfigDir) -> None:
    text = """\
        upstream:
          url: http://127.0.0.1:7777
          connect_timeout: 0s
          read_timeout: [1s]
        jwt:
          algorithms: [HS256]
          keys:
            - secret: 0123456789abcdef0123456789abcdef
          audience: api
          leeway: -10s
        logging: {}
        """
    assert cfg.errors(text) == [
        "config.yaml:3: upstream.connect_timeout: must be more than zero",
        "config.yaml:4: upstream.read_timeout: expected a duration such as 10s, 5m, 1h, 250ms or a number "
        "of seconds, got a list",
        "config.yaml:10: jwt.leeway: must not be negative",
    ]


def test_boolean_and_infinite_durations_in_the_config_are_refused(cfg: ConfigDir) -> None:
    text = """\
        upstream:
          url: http://127.0.0.1:7777
          connect_timeout: yes
          read_timeout: .inf
        jwt:
          algorithms: [HS256]
          keys:
            - secret: 0123456789abcdef0123456789abcdef
          audience: api
          leeway: 1x
        """
    assert cfg.errors(text) == [
        "config.yaml:3: upstream.connect_timeout: expected a duration such as 10s, 5m, 1h, 250ms or a number "
        "of seconds",
        "config.yaml:4: upstream.read_timeout: expected a duration such as 10s, 5m, 1h, 250ms or a number of "
        "seconds; got a number that is not finite",
        "config.yaml:10: jwt.leeway: expected a duration such as 10s, 5m, 1h, 250ms or a number of seconds; "
        "got '1x'",
    ]


def test_null_duration_is_refused(cfg: ConfigDir, head: str) -> None:
    assert cfg.errors(head + "  leeway:\n") == [
        "config.yaml:8: jwt.leeway: expected a duration such as 10s, 5m, 1h, 250ms or a number of seconds, "
        "got nothing (null)"
    ]
