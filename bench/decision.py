"""The decision alone, in process: authproxy.gate.authorize on a built Runtime, timed call by call."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from multidict import CIMultiDict

from bench.configs import BENCH_PATH

__all__ = ["DecisionTiming", "combine", "time_decision"]


@dataclass(frozen=True, slots=True)
class DecisionTiming:
    label: str
    median_us: float
    p99_us: float
    calls: int


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _time_calls(config: Path, tokens: list[str], repeat: int) -> list[float]:
    # Imported late: the harness also runs while the proxy package is unfinished.
    from authproxy.errors import ConfigError
    from authproxy.gate import authorize
    from authproxy.runtime import load_runtime

    try:
        runtime = load_runtime(config)
    except ConfigError as err:
        raise RuntimeError(f"config refused: {err}") from err
    headers = [CIMultiDict({"Authorization": f"Bearer {t}", "Host": "127.0.0.1"}) for t in tokens]
    first = await authorize(runtime, "GET", BENCH_PATH, headers[0])
    if not first.allowed:
        raise RuntimeError(f"bench token denied in process: {first.reason}")
    timings: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(repeat):
        for h in headers:
            start = clock()
            await authorize(runtime, "GET", BENCH_PATH, h)
            timings.append((clock() - start) / 1000.0)
    return timings


def time_decision(label: str, config: Path, tokens: list[str], repeat: int) -> DecisionTiming:
    """Median and p99 of one authorize() call; one token repeated is the warm-cache case."""
    timings = asyncio.run(_time_calls(config, tokens, repeat))
    if len(tokens) == 1:
        timings = timings[len(timings) // 10 :]  # the first calls fill caches and warm the interpreter
    return DecisionTiming(label, statistics.median(timings), _percentile(timings, 0.99), len(timings))


def combine(label: str, passes: list[DecisionTiming]) -> DecisionTiming:
    """Several passes of one case as one: the median of their medians and of their p99s."""
    return DecisionTiming(
        label,
        statistics.median(p.median_us for p in passes),
        statistics.median(p.p99_us for p in passes),
        sum(p.calls for p in passes),
    )
