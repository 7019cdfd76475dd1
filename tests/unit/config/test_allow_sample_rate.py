"""`logging.allow_sample_rate`: the share of allowed requests whose access line carries the decision detail;
a number from 0.0 to 1.0, default 1.0 (every request)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.rigs.configdir import ConfigDir


def test_allow_sample_rate_defaults_to_every_request(cfg: ConfigDir, head: str) -> None:
    assert cfg.config(head).logging.allow_sample_rate == 1.0
    assert cfg.config(head + "logging:\n  level: debug\n").logging.allow_sample_rate == 1.0


@pytest.mark.parametrize(
    ("written", "rate"), [("0", 0.0), ("0.0", 0.0), ("0.25", 0.25), ("1", 1.0), ("1.0", 1.0)]
)
def test_allow_sample_rate_takes_a_share(cfg: ConfigDir, head: str, written: str, rate: float) -> None:
    config = cfg.config(head + f"logging:\n  allow_sample_rate: {written}\n")
    assert config.logging.allow_sample_rate == rate
    assert isinstance(config.logging.allow_sample_rate, float)


def test_allow_sample_rate_from_the_environment(cfg: ConfigDir, head: str) -> None:
    config = cfg.config(head + "logging:\n  allow_sample_rate: ${RATE}\n", {"RATE": "0.1"})
    assert config.logging.allow_sample_rate == 0.1


@pytest.mark.parametrize(
    ("written", "env", "message"),
    [
        ("1.5", {}, "must be from 0.0 to 1.0; got 1.5"),
        ("-0.1", {}, "must be from 0.0 to 1.0; got -0.1"),
        (".nan", {}, "must be from 0.0 to 1.0; got nan"),
        ("often", {}, "expected a number from 0.0 to 1.0, got a string"),
        ("true", {}, "expected a number from 0.0 to 1.0, got true/false"),
        ("[0.5]", {}, "expected a number from 0.0 to 1.0, got a list"),
        ("${RATE}", {"RATE": "half"}, "expected a number from 0.0 to 1.0, got a string"),
        ("${RATE}", {"RATE": "2"}, "must be from 0.0 to 1.0; got 2.0"),
    ],
)
def test_bad_allow_sample_rate_is_refused(
    cfg: ConfigDir, head: str, written: str, env: dict[str, str], message: str
) -> None:
    errors = cfg.errors(head + f"logging:\n  allow_sample_rate: {written}\n", env)
    assert errors == [f"config.yaml:9: logging.allow_sample_rate: {message}"]
