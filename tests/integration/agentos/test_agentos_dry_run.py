"""Dry run and shadow policy against the real AgentOS (agno 3.1.10): authproxy with `preset: agentos` in
dry run in front of an AgentOS that still enforces its own RBAC, sent the differential suite's requests.

- Where the two agree today, the upstream divergence counter stays at zero.
- With the proxy's policy weakened on purpose (GET /sessions made public), the counter and the `divergence`
  lines name exactly the requests AgentOS refused and we would not have.
- A shadow policy that narrows GET /sessions shows exactly those requests in the shadow divergence, and no
  answer changes.

The AgentOS servers are the session's (conftest.py); each test starts its own authproxy process.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Protocol

import aiohttp
import pytest

from tests.integration.agentos.test_agentos_differential import REQUESTS, TOKENS, headers_for
from tests.rigs.agentos import (
    PROXY_CONFIG,
    AgentOSServer,
    Answer,
    ProxyProcess,
    send,
    start_authproxy,
    stop_authproxy,
)
from tests.rigs.keys import Mint
from tests.rigs.metrics import scrape, value

pytestmark = pytest.mark.agentos

Sent = tuple[str, str, str]  # (token name, method, path)


class StartProxy(Protocol):
    """`start(upstream, policy_lines, files)`: authproxy (preset agentos plus `policy_lines`) in front of
    `upstream`; `files` are written beside its config first."""

    def __call__(
        self, upstream: AgentOSServer, policy: str, files: dict[str, str] | None = None
    ) -> ProxyProcess: ...


PRESET = "  preset: agentos\n"
SESSIONS = ("GET", "/sessions")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


@pytest.fixture
def proxy_in_front(tmp_path: Path, hs_secret: bytes) -> Iterator[StartProxy]:
    started: list[ProxyProcess] = []

    def start(upstream: AgentOSServer, policy: str, files: dict[str, str] | None = None) -> ProxyProcess:
        for name, text in (files or {}).items():
            (tmp_path / name).write_text(text)
        config = tmp_path / f"authproxy-{len(started)}.yaml"
        text = PROXY_CONFIG.format(
            upstream=upstream.url, secret=hs_secret.decode(), audience=upstream.os_id, sources="[header]"
        )
        config.write_text(text.replace(PRESET, PRESET + policy))
        started.append(start_authproxy(config))
        return started[-1]

    yield start
    for proxy in started:
        stop_authproxy(proxy)


def admin_url(proxy: ProxyProcess) -> str:
    [listening] = [line for line in proxy.lines if line.get("event") == "listening"]
    return f"http://{listening['admin']}"


async def send_all(http: aiohttp.ClientSession, base: str, mint: Mint, audience: str) -> dict[Sent, Answer]:
    """The differential suite's requests, every token on every route."""
    answers = {}
    for name in TOKENS:
        headers = headers_for(name, mint, audience)
        for method, path in REQUESTS:
            answers[(name, method, path)] = await send(http, base, method, path, headers)
    return answers


def events(proxy: ProxyProcess, event: str) -> list[dict[str, object]]:
    return [line for line in proxy.lines if line.get("event") == event]


async def test_dry_run_in_front_of_agentos_rbac_sees_no_divergence_where_the_two_agree(
    agentos_rbac: AgentOSServer,
    proxy_in_front: StartProxy,
    mint: Mint,
    http: aiohttp.ClientSession,
) -> None:
    proxy = proxy_in_front(agentos_rbac, "  dry_run: true\n")
    direct = await send_all(http, agentos_rbac.url, mint, agentos_rbac.os_id)
    through = await send_all(http, proxy.url, mint, agentos_rbac.os_id)
    # Dry run never answers: every status is AgentOS's own.
    assert {k: a.status for k, a in through.items()} == {k: a.status for k, a in direct.items()}
    samples = await scrape(http, admin_url(proxy))
    assert value(samples, "authproxy_upstream_divergence_total") == 0, events(proxy, "divergence")
    assert events(proxy, "divergence") == []
    # and dry run was at work: our refusals were forwarded, logged and counted, not answered
    assert value(samples, "authproxy_dry_run_refusals_total") > 0
    assert value(samples, "authproxy_denials_total") == 0


async def test_a_weakened_policy_is_named_by_the_divergence_exactly_where_agentos_refused(
    agentos_rbac: AgentOSServer,
    proxy_in_front: StartProxy,
    mint: Mint,
    http: aiohttp.ClientSession,
) -> None:
    # GET /sessions public: wider than AgentOS, which asks for sessions:read.
    proxy = proxy_in_front(agentos_rbac, "  dry_run: true\n  public: [GET /sessions]\n")
    direct = await send_all(http, agentos_rbac.url, mint, agentos_rbac.os_id)
    await send_all(http, proxy.url, mint, agentos_rbac.os_id)
    refused = Counter(
        (method, path, str(answer.status))
        for (_, method, path), answer in direct.items()
        if (method, path) == SESSIONS and answer.status in (401, 403)
    )
    assert refused  # the weakening is real: AgentOS refuses some of these callers
    lines = events(proxy, "divergence")
    logged = Counter((str(d["method"]), str(d["path"]), str(d["upstream"])) for d in lines)
    assert logged == refused
    assert {str(d["ours"]) for d in lines} == {"allow"}
    samples = await scrape(http, admin_url(proxy))
    assert value(samples, "authproxy_upstream_divergence_total") == sum(refused.values())
    assert value(samples, "authproxy_upstream_divergence_total", route="GET /sessions", ours="allow") == sum(
        refused.values()
    )


# Narrows GET /sessions: sessions:read is no longer enough (the admin scope still passes every check).
SHADOW = 'preset: agentos\nroutes:\n  "GET /sessions": [sessions:read, sessions:audit]\n'


async def test_a_narrowing_shadow_shows_exactly_its_requests_and_changes_no_answer(
    agentos_rbac: AgentOSServer,
    agentos_open: AgentOSServer,
    authproxy_agentos: ProxyProcess,
    proxy_in_front: StartProxy,
    mint: Mint,
    http: aiohttp.ClientSession,
) -> None:
    proxy = proxy_in_front(agentos_open, "  shadow: next.yaml\n", {"next.yaml": SHADOW})
    # The differential's own proxy (the same preset, no shadow) in front of the same AgentOS.
    plain = await send_all(http, authproxy_agentos.url, mint, agentos_rbac.os_id)
    shadowed = await send_all(http, proxy.url, mint, agentos_rbac.os_id)
    assert {k: a.status for k, a in shadowed.items()} == {k: a.status for k, a in plain.items()}
    narrowed = Counter(
        (method, path)
        for (name, method, path), answer in plain.items()
        if (method, path) == SESSIONS and answer.status not in (401, 403) and name != "admin"
    )
    assert narrowed  # some callers are let through today
    lines = events(proxy, "shadow")
    assert Counter((str(s["method"]), str(s["path"])) for s in lines) == narrowed
    assert {(s["enforced"], s["shadow"], s["shadow_error"]) for s in lines} == {
        ("allow", "403", "insufficient_scope")
    }
    samples = await scrape(http, admin_url(proxy))
    assert value(samples, "authproxy_shadow_divergence_total") == sum(narrowed.values())
