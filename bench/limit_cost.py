"""The cost of a rate-limit check per request, in process: authproxy.gate.authorize with `consume=True`
(the proxy's call) on the bench config with no limits, with limits in process, and with limits in a
redis-server on loopback. The limits are far above any rate reached, so every call is an allow that
takes two tokens (the default and the route limit): the rows differ by the limit check alone.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from multidict import CIMultiDict

from bench.configs import BENCH_PATH
from bench.decision import DecisionTiming, _percentile, combine
from bench.procs import free_port

__all__ = ["time_limit_checks"]

_PASSES = 3
_LIMITS = """
rate_limits:
  backend: {backend}
  redis: {{timeout: 1s}}
  default: 1000000000/s
  routes:
    "GET /agents/{{agent_id}}": 1000000000/s
"""


async def _time(label: str, config: Path, token: str, calls: int) -> DecisionTiming:
    from authproxy.gate import authorize  # imported late, as in bench/decision.py
    from authproxy.runtime import load_runtime

    runtime = load_runtime(config)
    headers = CIMultiDict({"Authorization": f"Bearer {token}", "Host": "127.0.0.1"})
    timings: list[float] = []
    clock = time.perf_counter_ns
    try:
        for _ in range(calls // 10):  # warm caches, the Redis pool and the script
            await authorize(runtime, "GET", BENCH_PATH, headers, consume=True)
        for _ in range(calls):
            start = clock()
            decision = await authorize(runtime, "GET", BENCH_PATH, headers, consume=True)
            timings.append((clock() - start) / 1000.0)
            if not decision.allowed:
                raise RuntimeError(f"{label}: bench request refused: {decision.reason}")
    finally:
        await runtime.limits.close()
    return DecisionTiming(label, statistics.median(timings), _percentile(timings, 0.99), len(timings))


def _start_redis(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not found (scripts/install-tools.sh installs it)")
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(argv, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    for line in proc.stdout:  # ready once it says so; EOF means it exited
        if b"Ready to accept connections" in line:
            proc.stdout.close()
            return proc, f"redis://127.0.0.1:{port}/0"
    proc.wait()
    raise RuntimeError("redis-server exited before it was ready")


def time_limit_checks(plain_config: Path, work: Path, token: str, calls: int = 5_000) -> list[DecisionTiming]:
    """Median and p99 of one allowed decision: no limits, in-process limits, Redis limits."""
    base = plain_config.read_text()
    memory = work / "limits-memory.yaml"
    memory.write_text(base + _LIMITS.format(backend="memory"))
    redis, url = _start_redis(work)
    try:
        shared = work / "limits-redis.yaml"
        shared.write_text(base + _LIMITS.format(backend=url))
        cases = (
            ("HS256 + preset, limit check: none", plain_config),
            ("HS256 + preset, limit check: in-process", memory),
            ("HS256 + preset, limit check: Redis on loopback", shared),
        )
        passes: dict[str, list[DecisionTiming]] = {}
        for _ in range(_PASSES):  # interleaved, median of the medians, as for the decision rows
            for label, config in cases:
                passes.setdefault(label, []).append(asyncio.run(_time(label, config, token, calls)))
    finally:
        redis.terminate()
        redis.wait()
    return [combine(label, timings) for label, timings in passes.items()]
