"""wrk runs: a warm-up, then the measured run; results come back as JSON from a Lua `done` hook."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["REPORT_LUA", "LoadSettings", "Sample", "WrkError", "run_load", "write_scripts"]

_MARK = "BENCH-JSON "
REPORT_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH-JSON {\\"requests\\":%.0f,\\"duration_us\\":%.0f,\\"p50_us\\":%.0f,\\"p99_us\\":%.0f,"
    .. "\\"status\\":%.0f,\\"connect\\":%.0f,\\"read\\":%.0f,\\"write\\":%.0f,\\"timeout\\":%.0f}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect, e.read, e.write, e.timeout))
end
"""
# Every request carries the next token of the file: with more tokens than the proxy caches, all miss.
_CYCLE_LUA = """
local tokens = {}
local i = 0
init = function(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
end
request = function()
  i = i % #tokens + 1
  return wrk.format(nil, nil, {["Authorization"] = "Bearer " .. tokens[i], ["Host"] = wrk.headers["Host"]})
end
"""


class WrkError(RuntimeError):
    """wrk failed or printed no result."""


@dataclass(frozen=True, slots=True)
class LoadSettings:
    duration: float
    warmup: float
    threads: int
    connections: int


@dataclass(frozen=True, slots=True)
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int


def write_scripts(folder: Path) -> tuple[Path, Path]:
    """(report.lua, cycle.lua): the plain run's script and the token-cycling run's script."""
    report, cycle = folder / "report.lua", folder / "cycle.lua"
    report.write_text(REPORT_LUA)
    cycle.write_text(_CYCLE_LUA + REPORT_LUA)
    return report, cycle


def _wrk(
    url: str, seconds: float, settings: LoadSettings, script: Path, token: str | None, token_file: Path | None
) -> str:
    argv = [
        "timeout",
        "--signal=INT",
        "--kill-after=5",
        f"{int(seconds) + 20}",
        "wrk",
        f"-t{settings.threads}",
        f"-c{settings.connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
    ]
    if token is not None:
        argv += ["-H", f"Authorization: Bearer {token}"]
    argv.append(url)
    if token_file is not None:
        argv += ["--", str(token_file)]
    # A session of its own, so an interrupted harness can stop wrk too, not only `timeout`.
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = proc.communicate()
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    if proc.returncode != 0:
        raise WrkError(f"wrk exited {proc.returncode}: {stderr.strip()[-500:]}")
    return stdout


def _parse(stdout: str) -> Sample:
    for line in stdout.splitlines():
        if line.startswith(_MARK):
            raw = json.loads(line[len(_MARK) :])
            seconds = raw["duration_us"] / 1e6
            return Sample(
                rps=raw["requests"] / seconds if seconds else 0.0,
                p50_ms=raw["p50_us"] / 1000.0,
                p99_ms=raw["p99_us"] / 1000.0,
                requests=int(raw["requests"]),
                non_2xx=int(raw["status"]),
                socket_errors=int(raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]),
            )
    raise WrkError(f"no result line in wrk output:\n{stdout[-500:]}")


def run_load(
    url: str,
    settings: LoadSettings,
    script: Path,
    *,
    token: str | None = None,
    token_file: Path | None = None,
) -> Sample:
    """Warm up (discarded), then measure; loopback URLs only, every run bounded by `timeout`."""
    if not url.startswith(("http://127.0.0.1:", "https://127.0.0.1:")):
        raise ValueError(f"load runs target loopback only, not {url}")
    if settings.warmup > 0:
        _wrk(url, settings.warmup, settings, script, token, token_file)
    return _parse(_wrk(url, settings.duration, settings, script, token, token_file))
