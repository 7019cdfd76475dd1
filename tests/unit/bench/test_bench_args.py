"""`python -m bench` options of the scaling part."""

from __future__ import annotations

import pytest

from bench.__main__ import _args
from bench.plan import SCALING


def test_scaling_adds_one_and_two_workers_of_the_rs256_proxy() -> None:
    args = _args(["--only", "nginx-hop", "--scaling"])
    assert args.selected == {"nginx-hop", *SCALING}


def test_a_full_run_has_the_scaling_part() -> None:
    args = _args([])
    assert set(SCALING) <= args.selected


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
