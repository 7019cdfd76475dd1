"""The markdown report: machine facts, the load table, ratios against targets, decision timing, soak."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.decision import DecisionTiming
from bench.fixed_rate import p99_gap_ms, rate_reached
from bench.load import Sample
from bench.plan import FIXED_RATE_VARIANTS, P99_GAP, RATIOS, VARIANTS
from bench.soak import SoakResult

__all__ = ["DECISION_TARGET_US", "Results", "machine_facts", "render"]

DECISION_TARGET_US = 10.0
_PACKAGES = ("authproxy", "aiohttp", "PyJWT", "cryptography", "uvloop", "fastapi", "uvicorn", "agno")
_SOAK_FLAT = 0.05  # RSS may grow at most 5% between the first and the last sample


@dataclass
class Results:
    settings: str
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    peak_rss_kib: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    decisions: list[DecisionTiming] = field(default_factory=list)
    soak: SoakResult | None = None
    profile: list[str] = field(default_factory=list)
    fixed_rate: float = 0.0  # req/s of the fixed-rate part; 0: not run
    fixed_settings: str = ""
    fixed: dict[str, list[Sample]] = field(default_factory=dict)  # the fixed-rate part's runs

    def median(self, name: str, attr: str) -> float | None:
        return _median(self.samples.get(name), attr)


def _median(runs: Sequence[Sample] | None, attr: str) -> float | None:
    return statistics.median(getattr(s, attr) for s in runs) if runs else None


def _tool_version(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "missing"
    text = (done.stdout + done.stderr).strip().splitlines()
    return text[0] if text else "?"


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo").read().splitlines():  # noqa: SIM115 - tiny read
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _envoy_version(envoy: str) -> str:
    # "…/envoy  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL"
    found = re.search(r"version: \S+?/([0-9.]+)/", _tool_version([envoy, "--version"]))
    return found.group(1) if found else "?"


def machine_facts(envoy: str, uvicorn_parser: str, load_before: str) -> list[str]:
    versions = []
    for name in _PACKAGES:
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{name} missing")
    return [
        f"CPU: {_cpu_model()}, {os.cpu_count()} cores; {platform.system()} {platform.release()}",
        f"Python {platform.python_version()}; " + ", ".join(versions),
        f"{_tool_version(['nginx', '-v'])}; envoy {_envoy_version(envoy)}; {_tool_version(['wrk', '-v'])}; "
        f"FastAPI upstream on uvicorn with the {uvicorn_parser} parser and uvloop",
        f"load average (1 min) before the run {load_before}, after {os.getloadavg()[0]:.2f}"
        " (other work on the machine skews every number)",
    ]


def _fmt(value: float | None, pattern: str) -> str:
    return "n/a" if value is None else format(value, pattern)


def _load_table(res: Results) -> list[str]:
    lines = [
        "| variant | upstream | req/s | p50 ms | p99 ms | peak RSS MiB (front) | notes |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for v in VARIANTS:
        if v.name in res.failed:
            lines.append(f"| {v.name} | {v.upstream} | - | - | - | - | FAILED: {res.failed[v.name]} |")
            continue
        runs = res.samples.get(v.name)
        if not runs:
            continue
        notes = _notes(runs)
        rss = res.peak_rss_kib.get(v.name)
        lines.append(
            f"| {v.name} | {v.upstream} | {_fmt(res.median(v.name, 'rps'), ',.0f')} "
            f"| {_fmt(res.median(v.name, 'p50_ms'), '.2f')} | {_fmt(res.median(v.name, 'p99_ms'), '.2f')} "
            f"| {_fmt(rss / 1024 if rss else None, '.0f')} | {notes} |"
        )
    return lines


def _verdict(value: float | None, target: float | None, below: bool = False) -> str:
    if value is None or target is None:
        return "-"
    met = value <= target if below else value >= target
    return "met" if met else "**missed**"


def _ratio_table(res: Results) -> list[str]:
    lines = ["| ratio (req/s) | value | target | |", "|---|---:|---:|---|"]
    for r in RATIOS:
        num, den = res.median(r.numerator, "rps"), res.median(r.denominator, "rps")
        value = num / den if num is not None and den else None
        target = "-" if r.target is None else f"≥ {r.target:g}x"
        if value is None:
            if r.numerator in res.failed or r.denominator in res.failed:
                lines.append(f"| {r.label} | n/a | {target} | **not measured** (a side failed) |")
            continue  # otherwise a side left out with --only
        lines.append(f"| {r.label} | {value:.2f}x | {target} | {_verdict(value, r.target)} |")
    for d in res.decisions:
        target = f"≤ {DECISION_TARGET_US:g} µs" if d.label.endswith("warm") else "-"
        verdict = _verdict(d.median_us, DECISION_TARGET_US, below=True) if target != "-" else "-"
        lines.append(
            f"| decision median, {d.label} (p99 {d.p99_us:.1f} µs, {d.calls} calls) "
            f"| {d.median_us:.1f} µs | {target} | {verdict} |"
        )
    return lines


def _notes(runs: Sequence[Sample]) -> str:
    bad = sum(s.non_2xx for s in runs)
    errors = sum(s.socket_errors for s in runs)
    return ", ".join(
        n for n in (f"{bad} non-2xx" if bad else "", f"{errors} socket errors" if errors else "") if n
    )


def _fixed_table(res: Results) -> list[str]:
    rate = res.fixed_rate
    lines = [
        f"Fixed rate: {res.fixed_settings}",
        "",
        f"| variant at {rate:,.0f} req/s | achieved req/s | p50 ms | p99 ms | notes |",
        "|---|---:|---:|---:|---|",
    ]
    short = False
    for name in FIXED_RATE_VARIANTS:
        runs = res.fixed.get(name)
        if name in res.failed or not runs:
            lines.append(f"| {name} | - | - | - | {'FAILED' if name in res.failed else 'not measured'} |")
            continue
        achieved = _median(runs, "rps") or 0.0
        reached = rate_reached(achieved, rate)
        short = short or not reached
        notes = ", ".join(n for n in (_notes(runs), "" if reached else "**rate not reached**") if n)
        lines.append(
            f"| {name} | {achieved:,.0f} | {_fmt(_median(runs, 'p50_ms'), '.2f')} "
            f"| {_fmt(_median(runs, 'p99_ms'), '.2f')} | {notes} |"
        )
    gap = p99_gap_ms(res.fixed, P99_GAP.variant, P99_GAP.reference)
    verdict = _verdict(gap, P99_GAP.target_ms, below=True) if not short else "**rate not reached**"
    lines += [
        "",
        f"| latency at {rate:,.0f} req/s | value | target | |",
        "|---|---:|---:|---|",
        f"| {P99_GAP.label} | {_fmt(gap, '+.2f')} ms | ≤ {P99_GAP.target_ms:g} ms | {verdict} |",
    ]
    return lines


def _soak_lines(soak: SoakResult) -> list[str]:
    growth = soak.growth()
    flat = "flat" if abs(growth) <= _SOAK_FLAT else "**not flat**"
    series = ", ".join(f"{t:.0f}s {kib / 1024:.1f}" for t, kib in soak.samples)
    return [
        f"SSE soak: {soak.opened}/{soak.streams} streams opened, {soak.still_open} still open at the end, "
        f"{soak.events} events received, {soak.failures} failures; proxy RSS {soak.idle_kib / 1024:.1f} MiB "
        f"idle, growth {growth:+.1%} while streaming ({flat}).",
        "",
        f"Proxy RSS (MiB) every 5 s: {series}",
    ]


def render(res: Results, facts: Sequence[str]) -> str:
    out = ["# authproxy benchmark", "", *(f"- {f}" for f in facts), f"- {res.settings}", ""]
    out += [*_load_table(res), "", *_ratio_table(res), ""]
    if res.fixed_rate:
        out += [*_fixed_table(res), ""]
    if res.soak is not None:
        out += [*_soak_lines(res.soak), ""]
    if res.profile:
        out += ["## Profile", "", "```", *res.profile, "```", ""]
    return "\n".join(out)
