"""Command line: parse arguments, call library functions, print, return exit codes. No policy logic here."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from authproxy import __version__
from authproxy.auth.mint import default_algorithm, load_private_key, mint_token, write_key_pair
from authproxy.cli.demo import main as demo_main
from authproxy.cli.explain import explanations
from authproxy.cli.policy_cases import load_cases, run_cases
from authproxy.cli.shadow import add_shadow_arg, differences, report, shadow_config
from authproxy.config import load
from authproxy.config.values import ADDRESS_FORMS, check_upstream_url, parse_address, parse_duration
from authproxy.errors import ConfigError, Problem
from authproxy.runtime import load_runtime
from authproxy.serve.lifecycle import WorkerRole, run_server
from authproxy.serve.workers import default_workers
from authproxy.standards.jose import ALGORITHMS, EC_CURVES, HMAC_ALGORITHMS, key_algorithms

__all__ = ["main"]

_EPILOG_CONFIG = "The config file may also be named by the AUTHPROXY_CONFIG environment variable."


def _argument(parse: Callable[[str], object]) -> Callable[[str], str]:
    """An argparse type from a config value parser: a bad value is a usage error (exit 2) with the
    parser's own message, `argument --listen: ...`; a good one passes on as written."""

    def check(text: str) -> str:
        try:
            parse(text)
        except ValueError as bad:
            raise argparse.ArgumentTypeError(str(bad)) from None
        return text

    return check


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as bad:
        raise argparse.ArgumentTypeError(str(bad)) from None


def _config_arg(parser: argparse.ArgumentParser, *, shadow: bool = False) -> None:
    parser.add_argument(
        "-c",
        "--config",
        default=os.environ.get("AUTHPROXY_CONFIG"),
        metavar="FILE",
        help="the YAML config and policy (default: $AUTHPROXY_CONFIG)",
    )
    if shadow:
        add_shadow_arg(parser)


def _require_config(args: argparse.Namespace) -> str:
    if not args.config:
        raise SystemExit("authproxy: no config file: pass -c FILE or set AUTHPROXY_CONFIG")
    return str(args.config)


def _print_problems(problems: Sequence[Problem], *, warning: bool = False, stream: Any = None) -> None:
    out = stream or sys.stdout
    for p in problems:
        print(f"{p.file}:{p.line}: warning: {p.message}" if warning else str(p), file=out)


def _cmd_serve(args: argparse.Namespace) -> int:
    config = _require_config(args)
    workers = args.workers
    if workers is None:
        try:
            workers = default_workers()
        except ValueError as bad:
            raise SystemExit(f"authproxy serve: {bad}") from None
    if workers < 1 or args.reload_interval < 0:
        raise SystemExit("authproxy serve: --workers must be at least 1 and --reload-interval not negative")
    worker = None
    if args.worker_admin_socket is not None:
        worker = WorkerRole(args.worker_index, args.worker_admin_socket)
    return run_server(
        config,
        listen=args.listen,
        upstream=args.upstream,
        workers=workers,
        reload_interval=args.reload_interval,
        worker=worker,
    )


def _cmd_check(args: argparse.Namespace) -> int:
    path = _require_config(args)
    try:
        runtime = load_runtime(path)
    except ConfigError as err:
        _print_problems(err.problems)
        print(f"{path}: {len(err.problems)} error(s)", file=sys.stderr)
        return 1
    _print_problems(runtime.warnings, warning=True)
    cfg = runtime.config
    print(
        f"{path}: ok ({runtime.table.rule_count} rules, {len(cfg.jwt.keys)} key source(s), "
        f"algorithms {', '.join(cfg.jwt.algorithms)})"
    )
    if cfg.policy.dry_run:
        print(f"{path}: dry run: requests the policy would refuse are forwarded, not refused")
    if cfg.policy.shadow is not None:
        print(f"{path}: shadow policy {cfg.policy.shadow.file}: its differences are logged, never answered")
    return 0


def _body_arg(text: str | None) -> bytes | None:
    """`--body TEXT` as written (UTF-8), `--body @FILE` the file's bytes."""
    if text is None or not text.startswith("@"):
        return None if text is None else text.encode()
    try:
        return Path(text[1:]).read_bytes()
    except OSError as bad:
        raise SystemExit(f"authproxy explain: --body: cannot read {text[1:]}: {bad.strerror or bad}") from bad


def _cmd_explain(args: argparse.Namespace) -> int:
    request = (args.method, args.path)
    body = _body_arg(args.body)
    try:
        given = {"token": args.token, "headers": args.header, "body": body, "shadow": args.shadow}
        explained, shadow = asyncio.run(explanations(_require_config(args), *request, **given))
    except ConfigError as err:
        _print_problems(err.problems, stream=sys.stderr)
        return 2
    print(report(explained, shadow, args.shadow, as_json=args.json))
    return 0 if explained.decision.allowed else 1


def _claim_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _cmd_token(args: argparse.Namespace) -> int:
    claims: dict[str, Any] = {"sub": args.sub}
    if args.scopes:
        claims["scopes"] = [s for chunk in args.scopes for s in chunk.replace(",", " ").split()]
    if args.aud:
        claims["aud"] = args.aud[0] if len(args.aud) == 1 else args.aud
    if args.iss:
        claims["iss"] = args.iss
    if args.session_id:
        claims["session_id"] = args.session_id
    for item in args.claim:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"authproxy token: --claim takes NAME=VALUE, got {item!r}")
        claims[name] = _claim_value(value)
    if (args.secret is None) == (args.key is None):
        raise SystemExit("authproxy token: give exactly one of --secret or --key PEM")
    try:
        key, alg = _signing_key(args)
    except _UsageError as bad:
        print(f"authproxy token: error: {bad}", file=sys.stderr)
        return 2
    print(mint_token(claims, alg=alg, key=key, ttl=args.ttl, kid=args.kid))
    return 0


class _UsageError(Exception):
    """A command-line value that cannot be used: exit 2, as argparse's own usage errors."""


def _signing_key(args: argparse.Namespace) -> tuple[Any, str]:
    """(key, algorithm) for `token`: the --secret or --key PEM, and --alg checked against it."""
    if args.secret is not None:
        alg = args.alg or "HS256"
        if alg not in HMAC_ALGORITHMS:
            raise _UsageError(f"--alg {alg} signs with a private key: pass --key PEM instead of --secret")
        return args.secret, alg
    try:
        key = load_private_key(Path(args.key).read_bytes())
    except OSError as bad:
        raise _UsageError(f"--key: cannot read {args.key}: {bad.strerror or bad}") from None
    except (ValueError, TypeError):  # TypeError: the PEM is encrypted
        raise _UsageError(f"--key: {args.key} is not an unencrypted PEM private key") from None
    try:
        kty, usable = key_algorithms(key)
        alg = args.alg or default_algorithm(key)
    except ValueError as bad:
        raise _UsageError(f"--key: {args.key}: {bad}") from None
    if alg not in usable:
        hint = f"use {', '.join(sorted(usable))}" if usable else "no JOSE algorithm signs with it"
        raise _UsageError(f"--alg {alg} cannot sign with the {kty} key in {args.key} ({hint})")
    return key, alg


def _cmd_keys(args: argparse.Namespace) -> int:
    try:
        private_path, public_path = write_key_pair(args.kind, Path(args.out), curve=args.curve)
    except OSError as bad:
        print(f"authproxy keys: cannot write into {args.out}: {bad.strerror or bad}", file=sys.stderr)
        return 1
    print(f"wrote {private_path} (keep it secret) and {public_path} (goes in jwt.keys: public_key_file)")
    return 0


def _cmd_test(args: argparse.Namespace) -> int:
    try:
        config = load(_require_config(args))
        cases = [case for path in args.cases for case in load_cases(path)]
        shadowed = shadow_config(config, args.shadow) if args.shadow is not None else None
    except ConfigError as err:
        _print_problems(err.problems)
        return 1
    results = asyncio.run(run_cases(config, cases))
    for r in results:
        verdict = "PASS" if r.passed else "FAIL"
        line = f"{verdict} {r.case.name}: {r.case.method} {r.case.target} -> {r.status}"
        if not r.passed:
            line += f" (expected {r.case.expect}{' ' + r.case.expect_error if r.case.expect_error else ''};"
            line += f" {r.error or 'allowed'}: {r.reason}; body {json.dumps(r.body)})"
        if r.unused:
            line += f" [{r.unused} upstream answer(s) no check asked for]"
        if r.pending:
            line += f" [pending: {', '.join(r.pending)}]"
        print(line)
    failed = sum(not r.passed for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    if shadowed is not None:
        print("\n".join(differences(results, asyncio.run(run_cases(shadowed, cases)), args.shadow)))
    return 1 if failed else 0


def _cmd_demo(args: argparse.Namespace) -> int:
    return demo_main(listen=args.listen, admin_listen=args.admin_listen)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="authproxy",
        description="Authorization reverse proxy: verifies a JWT, checks the request against a YAML "
        "policy, forwards what is allowed and answers 401/403 for the rest.",
    )
    parser.add_argument("--version", action="version", version=f"authproxy {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run the proxy", epilog=_EPILOG_CONFIG)
    _config_arg(p)
    p.add_argument(
        "--listen",
        type=_argument(parse_address),
        metavar="HOST:PORT",
        help=f"override `listen` from the config: {ADDRESS_FORMS}",
    )
    p.add_argument(
        "--upstream",
        type=_argument(check_upstream_url),
        metavar="URL",
        help="override `upstream.url` from the config (and stand in for a missing `upstream`)",
    )
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="processes sharing the port (default: $AUTHPROXY_WORKERS, else the CPUs available)",
    )
    p.add_argument(
        "--reload-interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="how often the config and key files are checked for changes; 0: reload on SIGHUP only",
    )
    # Set by the supervisor of `--workers N` on the processes it starts; not for people.
    p.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--worker-admin-socket", help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser(
        "check",
        help="validate a config and its policy; print every problem as FILE:LINE: message",
        description="Exit 1 if there is any error, 0 otherwise (warnings are printed but allowed).",
        epilog=_EPILOG_CONFIG,
    )
    _config_arg(p)
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser(
        "explain",
        help="show the decision for one request: allow/deny, status, route, scopes, reason, checks",
        description="Runs the same decision and checks the proxy makes (those needing the upstream are "
        "reported as pending) and prints them, including the exact answer a denied client receives. "
        "Exit 0 when allowed, 1 when denied.",
        epilog='example: authproxy explain -c policy.yaml --token "$TOKEN" POST /agents/agno-agent/runs',
    )
    _config_arg(p, shadow=True)
    p.add_argument("--token", help="the JWT to present (omit to see what an anonymous caller gets)")
    p.add_argument("--header", action="append", default=[], metavar="NAME:VALUE", help="extra request header")
    p.add_argument(
        "--body",
        metavar="TEXT|@FILE",
        help="the request body (its Content-Type from --header); without it, checks reading it are pending",
    )
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("method", metavar="METHOD")
    p.add_argument("path", metavar="TARGET", help="the request target, e.g. /agents?limit=5")
    p.set_defaults(func=_cmd_explain)

    p = sub.add_parser(
        "token",
        help="mint a token for testing (HS* with --secret, RS/PS/ES/EdDSA with --key PEM)",
        epilog='example: authproxy token --secret "$SECRET" --sub alice --scopes agents:read --ttl 1h',
    )
    p.add_argument("--secret", help="HMAC secret (HS256/384/512)")
    p.add_argument("--key", metavar="PEM", help="private key PEM file (RSA, EC or Ed25519)")
    p.add_argument(
        "--alg",
        choices=ALGORITHMS,
        metavar="ALG",
        help="algorithm (default: HS256 for --secret, from the key type for --key)",
    )
    p.add_argument("--kid", help="key id put in the token header")
    p.add_argument("--sub", default="test-user", help="subject (default: test-user)")
    p.add_argument(
        "--scopes", action="append", default=[], help="scopes, comma or space separated; repeatable"
    )
    p.add_argument("--aud", action="append", default=[], help="audience; repeatable")
    p.add_argument("--iss", help="issuer")
    p.add_argument("--session-id", help="session_id claim")
    p.add_argument(
        "--ttl", type=_duration, default="1h", help="lifetime: 10s, 5m, 1h or seconds (default: 1h)"
    )
    p.add_argument(
        "--claim", action="append", default=[], metavar="NAME=VALUE", help="extra claim (JSON value)"
    )
    p.set_defaults(func=_cmd_token)

    p = sub.add_parser("keys", help="write a private/public PEM pair for trying RS/ES/EdDSA")
    p.add_argument("kind", choices=["rsa", "ec", "ed25519"])
    p.add_argument("--out", required=True, metavar="DIR", help="directory to write the PEM files into")
    p.add_argument("--curve", default="P-256", choices=list(EC_CURVES), help="EC curve")
    p.set_defaults(func=_cmd_keys)

    p = sub.add_parser(
        "test",
        help="run table-driven policy cases (request + token claims + expected status)",
        description="Each case: {name, request: 'METHOD PATH', claims: {...} (omit for no token), "
        "headers: {...}, body: {...}|[...]|TEXT, content_type: TYPE, upstream: [{status, json|body}], "
        "expired: bool, expect: STATUS or {status, error, body}, expect_error: CODE}. "
        "Exit 1 if any case fails.",
        epilog=_EPILOG_CONFIG,
    )
    _config_arg(p, shadow=True)
    p.add_argument("cases", nargs="+", metavar="CASES.yaml")
    p.set_defaults(func=_cmd_test)

    p = sub.add_parser(
        "demo",
        help="run a demo upstream behind the proxy and print tokens and curl lines",
        description="Runs from any install: the demo policy ships inside the package.",
        epilog="in a container: docker run --rm -p 8080:8080 IMAGE demo --listen :8080",
    )
    p.add_argument(
        "--listen",
        type=_argument(parse_address),
        default=os.environ.get("AUTHPROXY_DEMO_LISTEN", "127.0.0.1:0"),
        metavar="HOST:PORT",
        help=f"the proxied port: {ADDRESS_FORMS} (default: a free port on 127.0.0.1)",
    )
    p.add_argument(
        "--admin-listen",
        type=_argument(parse_address),
        default=os.environ.get("AUTHPROXY_DEMO_ADMIN_LISTEN", "127.0.0.1:0"),
        metavar="HOST:PORT",
        help="/healthz, /readyz, /metrics (default: a free port on 127.0.0.1)",
    )
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    code: int = args.func(args)
    return code
