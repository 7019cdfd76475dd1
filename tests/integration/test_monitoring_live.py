"""The shipped dashboard and alert rules against a real Prometheus (Debian's package, unpacked by
scripts/install-tools.sh) scraping a running proxy under a little traffic: every query of every dashboard
panel and variable returns data, and every alert rule loads and evaluates without error.

Prometheus is required under CI=true and skipped loudly elsewhere when absent, like tests/deploy."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.rigs.config import AUDIENCE, config_text
from tests.rigs.jwks import running_jwks_server
from tests.rigs.keys import mint_token, public_jwk
from tests.rigs.polling import poll
from tests.rigs.proxy import RunningProxy as OpsProxy
from tests.rigs.proxy import proxies as ops_launcher
from tests.rigs.upstream import RecordingUpstream

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "helm" / "authproxy" / "files" / "grafana-dashboard.json"
RULES = REPO / "helm" / "authproxy" / "files" / "prometheus-rules.yaml"
JOB = "authproxy"
# What Grafana substitutes before a query reaches Prometheus: every instance of the one job, and a rate
# window of several 1 s scrapes.
VARIABLES = {"$job": JOB, "$instance": ".+", "$__rate_interval": "20s"}


def prometheus_binary() -> str:
    found = shutil.which("prometheus") or shutil.which("prometheus", path=str(REPO / ".tools" / "bin"))
    if found is None:
        message = "MONITORING CHECK NOT RUN: `prometheus` is not on PATH or in .tools/bin; run `make tools`"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: tools must be installed by `make tools`)", pytrace=False)
        pytest.skip(message)
    return found


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL with the variables substituted) for every target of every panel."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in VARIABLES.items():
                expr = expr.replace(name, value)
            assert "$" not in expr, f"an unsubstituted variable in {panel['title']!r}: {expr}"
            queries.append((panel["title"], expr))
    return queries


@contextlib.asynccontextmanager
async def running_prometheus(tmp_path: Path, target: str, port: int) -> AsyncIterator[str]:
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files: [{RULES}]\n"
        f"scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n      - targets: ['{target}']\n"
    )
    with (tmp_path / "prometheus.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            prometheus_binary(),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:

            async def ready() -> bool:
                assert process.returncode is None, (tmp_path / "prometheus.log").read_text()[-2000:]
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(url + "/-/ready") as resp:
                        return resp.status == 200
                return False

            await poll(ready, within=60, every=0.1)
        yield url
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(20):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


async def api(session: aiohttp.ClientSession, url: str, path: str, **params: str) -> Any:
    async with session.get(url + path, params=params) as resp:
        body = await resp.json()
    assert body["status"] == "success", body
    return body["data"]


async def traffic(proxy: OpsProxy, key: rsa.RSAPrivateKey, stop: asyncio.Event) -> None:
    """Allowed, forbidden, unauthenticated, failing-upstream and upstream-refused requests, until `stop`."""

    def bearer(*scopes: str) -> dict[str, str]:
        claims = {"sub": "u", "aud": AUDIENCE, "scopes": list(scopes)}
        return {"Authorization": f"Bearer {mint_token(claims, key=key, alg='RS256', headers={'kid': 'k1'})}"}

    calls = [
        ("/items", bearer("proxy:use")),
        ("/private/x", bearer("proxy:use")),
        ("/items", {}),
        ("/reset", bearer("proxy:use")),  # the upstream hangs up: an upstream error
        ("/status/403", bearer("proxy:use")),  # we allow, the upstream refuses: an upstream divergence
    ]
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            for path, headers in calls:
                # /reset breaks off mid-body: the proxy aborts, so the client's read fails
                with contextlib.suppress(aiohttp.ClientPayloadError):
                    async with session.get(proxy.url + path, headers=headers) as resp:
                        await resp.read()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)


async def test_every_dashboard_query_returns_data_and_every_rule_evaluates(
    tmp_path: Path,
    upstream: RecordingUpstream,
    rsa_private_key: rsa.RSAPrivateKey,
    unused_tcp_port: int,
) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 15
    async with running_jwks_server() as idp, ops_launcher() as launch:
        idp.serve(public_jwk(rsa_private_key, "k1", alg="RS256"))
        keys = f"    - jwks_url: {idp.jwks_url}\n      allow_insecure_http: true"
        path = tmp_path / "monitored.yaml"
        # A shadow policy that lets proxy:use read /private/**: the forbidden calls are shadow divergences.
        shadow_policy = 'routes:\n  "* /**": [proxy:use]\n  "GET /private/**": [proxy:use]\n'
        (tmp_path / "shadow.yaml").write_text(shadow_policy)
        shadow = "  shadow: shadow.yaml\n"
        path.write_text(config_text(upstream.url, b"", algorithms="RS256", keys=keys, policy=shadow))
        proxy = await launch(path)
        stop = asyncio.Event()
        load = asyncio.create_task(traffic(proxy, rsa_private_key, stop))
        admin = proxy.admin_url.removeprefix("http://")
        try:
            async with (
                running_prometheus(tmp_path, admin, unused_tcp_port) as prom,
                aiohttp.ClientSession() as session,
            ):
                missing: dict[str, str] = {}

                async def all_answered() -> bool:
                    missing.clear()
                    for title, expr in queries:
                        result = (await api(session, prom, "/api/v1/query", query=expr))["result"]
                        values = [float(series["value"][1]) for series in result]
                        if not values or any(math.isnan(v) for v in values):
                            missing[title] = expr
                    return not missing

                try:
                    await poll(all_answered, within=90, every=1.0)
                except TimeoutError:
                    pytest.fail(f"dashboard queries without data: {json.dumps(missing, indent=2)}")

                jobs = await api(
                    session, prom, "/api/v1/label/job/values", **{"match[]": "authproxy_requests_total"}
                )
                assert jobs == [JOB]  # the $job variable's query

                async def rules_evaluated() -> bool:
                    groups = (await api(session, prom, "/api/v1/rules"))["groups"]
                    rules = [rule for group in groups for rule in group["rules"]]
                    return len(rules) == 7 and all(
                        rule["health"] == "ok" and rule["lastEvaluation"] > "2000" for rule in rules
                    )

                await poll(rules_evaluated, within=30, every=0.5)
        finally:
            stop.set()
            await load
