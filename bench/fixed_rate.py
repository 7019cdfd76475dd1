"""Fixed-rate latency: wrk paced to a request rate by its Lua `delay()` hook, p50/p99 at that rate.

wrk has no rate option. Before each request on a connection, wrk asks `delay()` how many milliseconds to
wait; the script hands out send slots `interval` apart from one schedule per wrk thread, whichever
connection asks. With more connections than requests in flight, every slot is taken: the rate holds
whatever the latency. A slot no connection was free for is dropped, not sent late in a burst, so an
overloaded server shows as an achieved rate below the target (the report prints it). wrk's latency is
measured from the actual send, so it is the service time at that rate (no coordinated-omission correction).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.load import REPORT_LUA, Sample

__all__ = ["RATE_SHORTFALL", "interval_ms", "p99_gap_ms", "rate_reached", "write_paced_script"]

RATE_SHORTFALL = 0.05  # an achieved rate more than 5 % under the target is reported as not reached

# LuaJIT's ffi reads CLOCK_MONOTONIC: plain Lua has only whole seconds (os.time) and CPU time (os.clock).
# wrk truncates the returned delay to whole milliseconds, so a request leaves up to 1 ms before its slot;
# the slots themselves stay `interval` apart, so the rate over the run is the schedule's.
_PACE_LUA = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct {{ long tv_sec; long tv_nsec; }} bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local clock = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, clock)  -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end
local interval = {interval!r}  -- ms between two sends of this thread
local next_slot = nil
delay = function()
  local now = now_ms()
  if next_slot == nil or next_slot < now then next_slot = now end
  local wait = next_slot - now
  next_slot = next_slot + interval
  return wait
end
"""


def interval_ms(rate: float, threads: int) -> float:
    """Milliseconds between two sends of one wrk thread, so that `threads` of them send `rate` req/s."""
    if rate <= 0 or threads < 1:
        raise ValueError(f"a fixed rate needs rate > 0 and at least one thread, not {rate} and {threads}")
    return 1000.0 * threads / rate


def write_paced_script(path: Path, rate: float, threads: int) -> Path:
    """The paced script at `path`: the pacing hook for `rate` over `threads`, then the report hook."""
    path.write_text(_PACE_LUA.format(interval=interval_ms(rate, threads)) + REPORT_LUA)
    return path


def rate_reached(achieved: float, rate: float) -> bool:
    return achieved >= rate * (1.0 - RATE_SHORTFALL)


def p99_gap_ms(samples: Mapping[str, Sequence[Sample]], variant: str, reference: str) -> float | None:
    """Median p99 of `variant` minus median p99 of `reference` (ms); None when either was not measured."""
    mine, theirs = samples.get(variant), samples.get(reference)
    if not mine or not theirs:
        return None
    return statistics.median(s.p99_ms for s in mine) - statistics.median(s.p99_ms for s in theirs)
