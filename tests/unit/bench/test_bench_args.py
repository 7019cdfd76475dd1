"""`python -m bench` options of the scaling and fixed-rate parts."""

from __future__ import annotations

import pytest

from bench.__main__ import _args
from bench.plan import SCALING


def test_scaling_adds_one_and_two_workers_of_the_rs256_proxy() -> None:
    args = _args(["--only", "nginx-hop", "--scaling"])
    assert args.selected == {"nginx-hop", *SCALING}


def test_a_full_run_has_the_scaling_and_fixed_rate_parts() -> None:
    args = _args([])
    assert {"fixed-rate", *SCALING} <= args.selected
    assert (args.rate, args.rate_seconds) == (1000.0, 10.0)


def test_quick_shortens_the_fixed_rate_runs() -> None:
    args = _args(["--quick", "--only", "fixed-rate"])
    assert args.selected == {"fixed-rate"}
    assert args.rate_seconds == 3.0


@pytest.mark.parametrize("asked", [["--scaling"], ["--only", "authproxy-rs256-w2"]])
def test_scaling_asked_with_another_base_worker_count_is_refused(
    asked: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        _args(["--workers", "2", *asked])
    assert stop.value.code == 2
    assert "run it with --workers 1" in capsys.readouterr().err


def test_a_full_run_with_two_workers_leaves_the_scaling_row_out() -> None:
    args = _args(["--workers", "2"])
    assert SCALING[1] not in args.selected
    assert SCALING[0] in args.selected


def test_a_rate_of_zero_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _args(["--rate", "0"])
    assert "--rate must be above 0" in capsys.readouterr().err
