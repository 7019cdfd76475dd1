"""The fixed-rate part of the bench: the pacing script's schedule, the rate check and the p99 gap."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.fixed_rate import interval_ms, p99_gap_ms, rate_reached, write_paced_script
from bench.load import LoadSettings, Sample, run_load
from tests.rigs.threaded_upstream import ThreadedUpstream


def _sample(p99_ms: float, rps: float = 1000.0) -> Sample:
    return Sample(rps=rps, p50_ms=0.1, p99_ms=p99_ms, requests=1000, non_2xx=0, socket_errors=0)


@pytest.mark.parametrize(("rate", "threads", "interval"), [(1000, 1, 1.0), (1000, 2, 2.0), (250, 1, 4.0)])
def test_each_thread_sends_its_share_of_the_rate(rate: float, threads: int, interval: float) -> None:
    assert interval_ms(rate, threads) == interval


@pytest.mark.parametrize(("rate", "threads"), [(0, 1), (-5, 1), (1000, 0)])
def test_a_rate_that_cannot_be_paced_is_refused(rate: float, threads: int) -> None:
    with pytest.raises(ValueError, match="fixed rate"):
        interval_ms(rate, threads)


def test_the_paced_script_carries_the_interval_and_the_report_hook(tmp_path: Path) -> None:
    text = write_paced_script(tmp_path / "paced.lua", 500, 1).read_text()
    assert "local interval = 2.0" in text
    assert "delay = function()" in text
    assert "BENCH-JSON" in text  # the report hook run_load parses


@pytest.mark.parametrize(("achieved", "reached"), [(1000.0, True), (950.0, True), (949.9, False), (0, False)])
def test_a_rate_more_than_5_percent_short_is_not_reached(achieved: float, reached: bool) -> None:
    assert rate_reached(achieved, 1000.0) is reached


def test_the_p99_gap_is_between_the_medians_of_the_runs() -> None:
    samples = {
        "authproxy-rs256": [_sample(3.0), _sample(1.0), _sample(2.0)],
        "nginx-hop": [_sample(0.5), _sample(1.5)],
    }
    assert p99_gap_ms(samples, "authproxy-rs256", "nginx-hop") == pytest.approx(1.0)
    assert p99_gap_ms(samples, "nginx-hop", "authproxy-rs256") == pytest.approx(-1.0)


@pytest.mark.parametrize("missing", ["authproxy-rs256", "nginx-hop"])
def test_no_gap_when_a_side_was_not_measured(missing: str) -> None:
    samples = {"authproxy-rs256": [_sample(2.0)], "nginx-hop": [_sample(1.0)]}
    samples[missing] = []
    assert p99_gap_ms(samples, "authproxy-rs256", "nginx-hop") is None


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is installed by scripts/install-bench-tools.sh")
def test_wrk_runs_the_paced_script_and_keeps_to_the_schedule(tmp_path: Path) -> None:
    """wrk loads the script (LuaJIT's ffi clock included) and sends no more than the slots it hands out:
    unpaced, this upstream would answer thousands of requests in the run."""
    rate, connections = 50.0, 8
    script = write_paced_script(tmp_path / "paced.lua", rate, 1)
    with ThreadedUpstream() as upstream:
        sample = run_load(f"{upstream.url}/agents/a", LoadSettings(1.0, 0.0, 1, connections), script)
        seen = len(upstream.paths())
    assert sample.requests > 0
    assert (sample.non_2xx, sample.socket_errors) == (0, 0)
    seconds = sample.requests / sample.rps
    assert sample.requests <= rate * seconds + connections  # one slot per interval, one in flight each
    assert seen >= sample.requests
