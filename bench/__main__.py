"""`python -m bench`: start everything on 127.0.0.1, measure interleaved variants, print and save a report."""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType

from bench.configs import BENCH_PATH
from bench.decision import DecisionTiming, combine, time_decision
from bench.fixed_rate import write_paced_script
from bench.limit_cost import time_limit_checks
from bench.load import LoadSettings, run_load, write_scripts
from bench.plan import FIXED_RATE_VARIANTS, SCALING, VARIANTS, Variant
from bench.procs import ServiceError, Services, peak_rss_kib, rss_kib
from bench.profile import profile_under_load
from bench.report import Results, machine_facts, render
from bench.soak import run_soak
from bench.stack import REPO, Stack, uvicorn_parser
from bench.tls_material import client_context
from bench.tokens import KeySet, make_keys

_RESULTS = REPO / "bench" / "results"
_BIN = Path(sys.executable).parent
_EXTRA = ("decision", "soak", "limits", "fixed-rate")
_DECISION_PASSES = 3
_MISS_TOKENS = 15_000  # more than authproxy's 10,000-entry verification cache: cycling them, every one misses


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="smoke test: -d3s, 1 round, 1 s warm-up, no soak")
    p.add_argument("--only", help="comma list of variants (and/or 'decision', 'soak', 'limits') to run")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measured wrk run")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of discarded warm-up per run")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the median is reported")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--threads", type=int, default=1, help="wrk threads")
    p.add_argument(
        "--workers", type=int, default=1, help="proxy workers (authproxy if it has --workers; Envoy)"
    )
    p.add_argument(
        "--scaling", action="store_true", help="also authproxy-rs256 with --workers 2 against one worker"
    )
    p.add_argument("--rate", type=float, default=1000.0, help="req/s of the fixed-rate part")
    p.add_argument("--rate-seconds", type=float, default=10.0, help="seconds per measured fixed-rate run")
    p.add_argument("--soak-seconds", type=float, default=60.0)
    p.add_argument("--soak-streams", type=int, default=500)
    p.add_argument("--profile", metavar="VARIANT", help="py-spy the authproxy of VARIANT under load")
    p.add_argument("--keep", action="store_true", help="keep the work folder (configs, logs, keys)")
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.rounds, args.warmup, args.rate_seconds = 3.0, 1, 1.0, 3.0
    if args.rate <= 0:
        p.error("--rate must be above 0")
    names = {v.name for v in VARIANTS} | set(_EXTRA)
    args.selected = set(args.only.split(",")) if args.only else names
    unknown = args.selected - names
    if unknown:
        p.error(f"unknown names in --only: {', '.join(sorted(unknown))} (known: {', '.join(sorted(names))})")
    if args.quick and not args.only:
        args.selected.discard("soak")
    if args.scaling:
        args.selected |= set(SCALING)
    if args.workers != 1 and SCALING[1] in args.selected:
        # The scaling row compares two workers with one: any other base would print a wrong ratio.
        if args.scaling or args.only:
            p.error(f"--scaling / {SCALING[1]} compares --workers 2 with one worker: run it with --workers 1")
        args.selected.discard(SCALING[1])
    return args


def _check_tools() -> None:
    missing = [t for t in ("wrk", "timeout") if shutil.which(t) is None]
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        missing.append("nginx")
    missing += [t for t in ("envoy", "authproxy") if not (_BIN / t).exists()]
    if missing:
        sys.exit(f"bench: missing {', '.join(missing)}: run `bash scripts/install-bench-tools.sh .venv`")


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through Services.close like Ctrl-C


def _raise_fd_limit() -> None:
    # 500 SSE streams need ~1,000 descriptors in the proxy (children inherit the limit).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))


def _status(url: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - loopback URL built here
    try:
        with urllib.request.urlopen(request, timeout=5, context=client_context()) as resp:  # noqa: S310
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except (urllib.error.URLError, OSError):
        return 0


def _check(v: Variant, url: str, keys: KeySet) -> str | None:
    """Why the variant would not measure what it claims (allowed 200; refused 401/403 when protected)."""
    expected: list[tuple[str | None, int, str]] = [(keys.token(v.alg), 200, "bench request")]
    if v.protected:
        expected += [
            (None, 401, "request without a token"),
            (keys.token(v.alg, scopes=["teams:read"]), 403, "token without agents:read"),
        ]
    for token, want, what in expected:
        got = _status(url, token)
        if got != want:
            return f"{what} answered {got}, not {want}"
    return None


def _decisions(res: Results, stack: Stack, keys: KeySet) -> None:
    cases = (
        ("RS256 + agentos preset, warm", "ap-rs256", [keys.token("RS256")], 20_000),
        ("HS256 + preset, warm", "ap-hs256", [keys.token("HS256")], 20_000),
        ("HS256 + preset + one claims condition, warm", "ap-hs256-when", [keys.token("HS256")], 20_000),
        ("ES256 + preset, warm", "ap-es256", [keys.token("ES256")], 20_000),
        ("RS256 + preset, cache miss", "ap-rs256", list(keys.distinct_rs256(2_000)), 1),
    )
    passes: dict[str, list[DecisionTiming]] = {}
    # Interleaved passes, median of their medians: one burst of other work cannot decide a verdict.
    for _ in range(_DECISION_PASSES):
        for label, name, tokens, repeat in cases:
            try:
                timing = time_decision(label, stack.write_config(name), tokens, repeat)
            except (ImportError, RuntimeError) as err:  # the proxy package may be unfinished
                print(f"bench: decision timing unavailable: {err}", file=sys.stderr)
                return
            passes.setdefault(label, []).append(timing)
    res.decisions.extend(combine(label, timings) for label, timings in passes.items())


def _prepare(variants: list[Variant], stack: Stack, keys: KeySet, work: Path, res: Results) -> dict[str, str]:
    """Start every server; check the bench request is allowed (200) through each; a token per variant."""
    tokens: dict[str, str] = {}
    for v in variants:
        try:
            problem = _check(v, stack.url(v.service, BENCH_PATH), keys)
        except ServiceError as err:
            problem = " / ".join(str(err).splitlines()[:2])[:300]
            print(f"bench: {v.name}: {err}", file=sys.stderr)
        if problem is not None:
            res.failed[v.name] = problem
        tokens[v.name] = keys.token(v.alg)
    if any(v.cycle for v in variants):
        (work / "tokens.txt").write_text("\n".join(keys.distinct_rs256(_MISS_TOKENS)) + "\n")
    return tokens


def _load_once(v: Variant, stack: Stack, settings: LoadSettings, work: Path, token: str) -> object:
    report, cycle = work / "report.lua", work / "cycle.lua"
    url = stack.url(v.service, BENCH_PATH)
    if v.cycle:
        return run_load(url, settings, cycle, token_file=work / "tokens.txt")
    return run_load(url, settings, report, token=token)


def _measure(
    variants: list[Variant],
    stack: Stack,
    settings: LoadSettings,
    rounds: int,
    work: Path,
    res: Results,
    tokens: dict[str, str],
) -> None:
    live = [v for v in variants if v.name not in res.failed]
    for r in range(rounds):
        for v in live:  # interleaved: A B C A B C, so drift hits every variant alike
            sample = _load_once(v, stack, settings, work, tokens[v.name])
            res.samples.setdefault(v.name, []).append(sample)  # type: ignore[arg-type]
            print(f"bench: round {r + 1}/{rounds} {v.name}: {sample}", file=sys.stderr)
    for v in live:
        res.peak_rss_kib[v.name] = peak_rss_kib(stack.get(v.service).pid)


def _fixed_rate(
    args: argparse.Namespace, stack: Stack, work: Path, res: Results, tokens: dict[str, str]
) -> None:
    """The fixed-rate part: each variant paced to args.rate, interleaved over the rounds."""
    settings = LoadSettings(args.rate_seconds, args.warmup, args.threads, args.connections)
    script = write_paced_script(work / "paced.lua", args.rate, args.threads)
    res.fixed_rate = args.rate
    res.fixed_settings = (
        f"wrk -t{args.threads} -c{args.connections} -d{args.rate_seconds:g}s after {args.warmup:g}s warm-up, "
        f"paced by its Lua delay() hook to {args.rate:,.0f} req/s, {args.rounds} interleaved round(s), "
        "median reported"
    )
    live = [v for v in VARIANTS if v.name in FIXED_RATE_VARIANTS and v.name not in res.failed]
    for r in range(args.rounds):
        for v in live:
            sample = run_load(stack.url(v.service, BENCH_PATH), settings, script, token=tokens[v.name])
            res.fixed.setdefault(v.name, []).append(sample)
            print(f"bench: fixed rate round {r + 1}/{args.rounds} {v.name}: {sample}", file=sys.stderr)


def _profile(name: str, stack: Stack, settings: LoadSettings, work: Path, keys: KeySet) -> list[str]:
    variant = next(v for v in VARIANTS if v.name == name)
    pid = stack.get(variant.service).pid
    _RESULTS.mkdir(parents=True, exist_ok=True)
    return profile_under_load(
        pid,
        int(settings.duration),
        lambda: _load_once(variant, stack, settings, work, keys.token(variant.alg)),
        _RESULTS,
    )


def _soak(args: argparse.Namespace, stack: Stack, keys: KeySet, res: Results) -> None:
    proxy = stack.get("ap-sse")
    url = stack.url("ap-sse", "/agents/sse-agent/runs")
    res.soak = run_soak(
        url,
        keys.token("RS256"),
        streams=args.soak_streams,
        seconds=args.soak_seconds,
        every=5.0,
        rss=lambda: rss_kib(proxy.pid),
    )


def _run(args: argparse.Namespace, work: Path, res: Results) -> None:
    keys = make_keys(work)
    write_scripts(work)
    env = {**os.environ, "AUTHPROXY_SHUTDOWN_GRACE": "2"}  # teardown need not wait out a drain
    with Services(work / "logs", env=env) as services:
        stack = Stack(services, work, keys, args.workers)
        res.settings += f"; proxy workers {stack.proxy_workers} (authproxy and Envoy)"
        if "decision" in args.selected:
            _decisions(res, stack, keys)
        if "limits" in args.selected:
            res.decisions.extend(time_limit_checks(stack.write_config("ap-hs256"), work, keys.token("HS256")))
        variants = [v for v in VARIANTS if v.name in args.selected]
        paced = [v for v in VARIANTS if "fixed-rate" in args.selected and v.name in FIXED_RATE_VARIANTS]
        settings = LoadSettings(args.duration, args.warmup, args.threads, args.connections)
        tokens = _prepare([v for v in VARIANTS if v in variants or v in paced], stack, keys, work, res)
        _measure(variants, stack, settings, args.rounds, work, res, tokens)
        if paced:
            _fixed_rate(args, stack, work, res, tokens)
        if args.profile:
            res.profile = _profile(args.profile, stack, settings, work, keys)
        if "soak" in args.selected:
            _soak(args, stack, keys, res)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    _check_tools()
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with SIGINT ignored
    _raise_fd_limit()
    load_before = f"{os.getloadavg()[0]:.2f}"
    work = Path(tempfile.mkdtemp(prefix="authproxy-bench-"))
    res = Results(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s after {args.warmup:g}s warm-up, "
        f"{args.rounds} interleaved round(s), median reported"
    )
    try:
        _run(args, work, res)
    except KeyboardInterrupt:
        print("bench: interrupted; every server was stopped", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"bench: work folder kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    text = render(res, machine_facts(str(_BIN / "envoy"), uvicorn_parser(), load_before))
    print(text)
    _RESULTS.mkdir(parents=True, exist_ok=True)
    # Only a full run replaces latest.md; --quick/--only runs must not overwrite the numbers worth keeping.
    partial = args.quick or args.only is not None
    (_RESULTS / ("partial.md" if partial else "latest.md")).write_text(text)
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
