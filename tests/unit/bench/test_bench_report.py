"""The report's scaling row and fixed-rate section: values, targets and verdicts."""

from __future__ import annotations

from bench.load import Sample
from bench.report import Results, render


def _sample(rps: float, p99_ms: float = 1.0) -> Sample:
    return Sample(rps=rps, p50_ms=0.2, p99_ms=p99_ms, requests=int(rps), non_2xx=0, socket_errors=0)


def _fixed(authproxy_p99: float, rps: float = 1000.0) -> Results:
    res = Results("settings", fixed_rate=1000.0, fixed_settings="paced")
    res.fixed = {
        "nginx-hop": [_sample(1000.0, 0.8)],
        "envoy-rs256": [_sample(1000.0, 1.2)],
        "authproxy-rs256": [_sample(rps, authproxy_p99)],
    }
    return res


def test_the_scaling_ratio_is_two_workers_over_one_with_its_target() -> None:
    res = Results("settings")
    res.samples = {"authproxy-rs256": [_sample(3000.0)], "authproxy-rs256-w2": [_sample(5400.0)]}
    text = render(res, [])
    assert "| authproxy-RS256 --workers 2 / one worker | 1.80x | ≥ 1.7x | met |" in text


def test_a_p99_within_1_ms_of_the_hop_meets_the_target() -> None:
    text = render(_fixed(1.7), [])
    assert "| authproxy-rs256 | 1,000 | 0.20 | 1.70 |  |" in text
    assert "| authproxy-RS256 p99 - nginx hop p99 | +0.90 ms | ≤ 1 ms | met |" in text


def test_a_p99_more_than_1_ms_over_the_hop_misses_it() -> None:
    text = render(_fixed(1.9), [])
    assert "| authproxy-RS256 p99 - nginx hop p99 | +1.10 ms | ≤ 1 ms | **missed** |" in text


def test_latency_below_the_rate_is_not_judged() -> None:
    text = render(_fixed(0.9, rps=900.0), [])
    assert "| authproxy-rs256 | 900 | 0.20 | 0.90 | **rate not reached** |" in text
    assert "| +0.10 ms | ≤ 1 ms | **rate not reached** |" in text


def test_no_fixed_rate_section_when_the_part_did_not_run() -> None:
    assert "Fixed rate" not in render(Results("settings"), [])
