"""The report's scaling row: value, target and verdict."""

from __future__ import annotations

from bench.load import Sample
from bench.report import Results, render


def _sample(rps: float, p99_ms: float = 1.0) -> Sample:
    return Sample(rps=rps, p50_ms=0.2, p99_ms=p99_ms, requests=int(rps), non_2xx=0, socket_errors=0)


def test_the_scaling_ratio_is_two_workers_over_one_with_its_target() -> None:
    res = Results("settings")
    res.samples = {"authproxy-rs256": [_sample(3000.0)], "authproxy-rs256-w2": [_sample(5400.0)]}
    text = render(res, [])
    assert "| authproxy-RS256 --workers 2 / one worker | 1.80x | ≥ 1.7x | met |" in text
