"""Differential suite for per-user isolation: an AgentOS enforcing its own RBAC with
`AuthorizationConfig(user_isolation=True)` against authproxy (`preset: agentos`, `user_isolation: true`)
in front of an AgentOS with no auth. Both hold the same two users' sessions, runs and memories; the same
requests get the same statuses, the same item ids and the same owners, except the differences
docs/agentos.md lists, each asserted here as a difference. No request reaches a model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from tests.rigs.agentos import (
    PROXY_CONFIG,
    Answer,
    ProxyProcess,
    Running,
    send,
    spawn,
    start_authproxy,
    stop,
    stop_authproxy,
)
from tests.rigs.agentos import wait_ready as wait_agentos
from tests.rigs.agentos_seed import AGENT, seed, seeded
from tests.rigs.keys import Mint

pytestmark = pytest.mark.agentos

ALICE, BOB = seeded("alice"), seeded("bob")
ADMIN = ["agent_os:admin"]
PER_ITEM = [
    "sessions:read",
    "sessions:write",
    "sessions:delete",
    "memories:read",
    "memories:write",
    "memories:delete",
    f"agents:{AGENT}:read",
    f"agents:{AGENT}:run",
]
# name -> (sub, scopes); None: no token
TOKENS: dict[str, tuple[str, list[str]] | None] = {
    "admin": ("root", ADMIN),
    "alice per-item": ("alice", PER_ITEM),
    "alice read-only": ("alice", ["sessions:read", "memories:read", f"agents:{AGENT}:read"]),
    "bob per-item": ("bob", PER_ITEM),
    "none": None,
}


@dataclass(frozen=True, slots=True)
class Pair:
    agno: str  # the isolated-RBAC AgentOS
    proxy: str  # authproxy in front of the open AgentOS
    os_id: str


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, hs_secret: bytes) -> Iterator[Pair]:
    started: list[Running] = []
    proxy: ProxyProcess | None = None
    try:
        for mode in ("rbac-isolated", "open"):
            workdir = tmp_path_factory.mktemp(f"isolation-{mode}")
            seed(str(workdir / f"{mode}.db"))
            started.append(spawn(mode, workdir, hs_secret.decode()))
        for running in started:
            wait_agentos(running)
        rbac, upstream = (r.server for r in started)
        config = tmp_path_factory.mktemp("isolation-proxy") / "agentos.yaml"
        text = PROXY_CONFIG.format(
            upstream=upstream.url, secret=hs_secret.decode(), audience=upstream.os_id, sources="[header]"
        )
        config.write_text(text.replace("  preset: agentos\n", "  preset: agentos\n  user_isolation: true\n"))
        proxy = start_authproxy(config)
        yield Pair(rbac.url, proxy.url, rbac.os_id)
    finally:
        if proxy is not None:
            stop_authproxy(proxy)
        for running in started:
            stop(running)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


def headers_for(name: str, mint: Mint, audience: str) -> dict[str, str]:
    spec = TOKENS[name]
    if spec is None:
        return {}
    sub, scopes = spec
    return {"Authorization": f"Bearer {mint({'sub': sub, 'aud': audience, 'scopes': scopes})}"}


async def both(
    http: aiohttp.ClientSession, pair: Pair, mint: Mint, token: str, method: str, path: str, **kwargs: Any
) -> tuple[Answer, Answer]:
    headers = headers_for(token, mint, pair.os_id)
    agno = await send(http, pair.agno, method, path, headers, **kwargs)
    ours = await send(http, pair.proxy, method, path, headers, **kwargs)
    return agno, ours


def items(answer: Answer, key: str) -> list[tuple[Any, Any]]:
    """(id, owner) of every seeded item of a paginated listing (`{"data": [...]}`) or a bare list; rows the
    write tests create get random ids, so for those only the owner is kept."""
    rows = answer.body["data"] if isinstance(answer.body, dict) else answer.body
    seeded_ids = ("sess-", "mem-", "run-")
    return sorted(
        (row[key] if str(row[key]).startswith(seeded_ids) else "(created)", row.get("user_id"))
        for row in rows
    )


READS = (
    "/sessions?type=agent",
    f"/sessions/{ALICE.session_id}",
    f"/sessions/{BOB.session_id}",
    f"/sessions/{BOB.session_id}/runs",
    f"/sessions/{ALICE.session_id}/runs/{ALICE.run_id}",
    f"/sessions/{BOB.session_id}/runs/{BOB.run_id}",
    "/memories",
    f"/memories/{ALICE.memory_id}",
    f"/memories/{BOB.memory_id}",
    "/memory_topics",
    "/user_memory_stats",
    f"/sessions/{ALICE.session_id}/runs",
    f"/sessions/{BOB.session_id}/run-previews",
    f"/agents/{AGENT}/runs?session_id={ALICE.session_id}",
    f"/agents/{AGENT}/runs?session_id={BOB.session_id}",
    f"/agents/{AGENT}/runs/{ALICE.run_id}?session_id={ALICE.session_id}",
    f"/agents/{AGENT}/runs/{BOB.run_id}?session_id={BOB.session_id}",
)


@pytest.mark.parametrize("token", list(TOKENS))
@pytest.mark.parametrize("path", READS)
async def test_reads_answer_as_agno_with_isolation(
    path: str, token: str, pair: Pair, mint: Mint, http: aiohttp.ClientSession
) -> None:
    agno, ours = await both(http, pair, mint, token, "GET", path)
    assert ours.status == agno.status, (agno.body, ours.body)
    if agno.status != 200:
        return
    if path.startswith(("/sessions?", "/memories")) and "/" not in path[1:].split("?")[0]:
        key = "session_id" if path.startswith("/sessions") else "memory_id"
        assert items(ours, key) == items(agno, key)
    elif isinstance(agno.body, dict):
        for field in ("session_id", "memory_id", "run_id", "user_id"):
            assert ours.body.get(field) == agno.body.get(field), field
    elif isinstance(agno.body, list) and agno.body and isinstance(agno.body[0], dict):
        assert sorted(r.get("run_id") for r in ours.body) == sorted(r.get("run_id") for r in agno.body)


async def test_alice_sees_only_her_own_sessions_and_memories(
    pair: Pair, mint: Mint, http: aiohttp.ClientSession
) -> None:
    agno, ours = await both(http, pair, mint, "alice read-only", "GET", "/sessions?type=agent")
    assert items(ours, "session_id") == items(agno, "session_id") == [(ALICE.session_id, "alice")]
    agno, ours = await both(http, pair, mint, "alice read-only", "GET", "/memories")
    owners = {owner for _, owner in items(ours, "memory_id")}
    assert owners == {owner for _, owner in items(agno, "memory_id")} == {"alice"}
    agno, ours = await both(http, pair, mint, "admin", "GET", "/sessions?type=agent")
    assert (
        {o for _, o in items(ours, "session_id")}
        == {o for _, o in items(agno, "session_id")}
        == {"alice", "bob"}
    )


OTHERS: tuple[
    tuple[str, str, dict[str, Any]], ...
] = (  # writes aimed at another user's entities: refused or a no-op, never acted on
    ("PATCH", f"/memories/{BOB.memory_id}", {"json": {"memory": "alice was here"}}),
    ("DELETE", f"/memories/{BOB.memory_id}", {}),
    ("DELETE", f"/sessions/{BOB.session_id}", {}),
    ("POST", f"/sessions/{BOB.session_id}/rename", {"json": {"session_name": "mine now"}}),
    ("POST", f"/agents/{AGENT}/runs/{BOB.run_id}/cancel?session_id={BOB.session_id}", {}),
    ("POST", f"/agents/{AGENT}/runs/{BOB.run_id}/cancel", {}),
    (
        "POST",
        f"/agents/{AGENT}/runs",
        {"data": {"message": "hi", "session_id": BOB.session_id, "stream": "false"}},
    ),
    ("DELETE", "/sessions", {"json": {"session_ids": [BOB.session_id], "session_types": ["agent"]}}),
    ("DELETE", "/memories", {"json": {"memory_ids": [BOB.memory_id, BOB.spare_memory_id]}}),
)
WRITES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    *OTHERS,
    # the caller's own
    ("POST", "/memories", {"json": {"memory": "alice likes green tea", "topics": ["tea"]}}),
    ("PATCH", f"/memories/{ALICE.memory_id}", {"json": {"memory": "alice likes black tea"}}),
    ("DELETE", f"/memories/{ALICE.spare_memory_id}", {}),
    ("POST", f"/agents/{AGENT}/runs/{ALICE.run_id}/cancel?session_id={ALICE.session_id}", {}),
)


@pytest.mark.parametrize(("method", "path", "kwargs"), WRITES, ids=[f"{m} {p}" for m, p, _ in WRITES])
async def test_writes_answer_as_agno_with_isolation(
    method: str, path: str, kwargs: dict[str, Any], pair: Pair, mint: Mint, http: aiohttp.ClientSession
) -> None:
    agno, ours = await both(http, pair, mint, "alice per-item", method, path, **kwargs)
    assert ours.status == agno.status, (agno.body, ours.body)
    if isinstance(agno.body, dict) and agno.status < 300:
        assert ours.body.get("user_id") == agno.body.get("user_id")


async def test_another_users_rows_survive_the_writes(
    pair: Pair, mint: Mint, http: aiohttp.ClientSession
) -> None:
    for method, path, kwargs in OTHERS:
        await both(http, pair, mint, "alice per-item", method, path, **kwargs)
    for path in (
        f"/memories/{BOB.memory_id}",
        f"/memories/{BOB.spare_memory_id}",
        f"/sessions/{BOB.session_id}",
    ):
        agno, ours = await both(http, pair, mint, "admin", "GET", path)
        assert (agno.status, ours.status) == (200, 200)
        assert ours.body["user_id"] == agno.body["user_id"] == "bob"
    agno, ours = await both(http, pair, mint, "admin", "GET", f"/memories/{BOB.memory_id}")
    assert ours.body["memory"] == agno.body["memory"] == "bob likes tea"


@pytest.mark.parametrize(
    ("path", "kwargs"),
    [
        ("/sessions?user_id=bob", {}),
        ("/memories", {"json": {"memory": "for bob", "user_id": "bob"}}),
    ],
)
async def test_naming_another_user_is_refused_where_agno_substitutes_the_caller(
    path: str, kwargs: dict[str, Any], pair: Pair, mint: Mint, http: aiohttp.ClientSession
) -> None:
    method = "POST" if kwargs else "GET"
    agno, ours = await both(http, pair, mint, "alice per-item", method, path, **kwargs)
    assert agno.status == 200  # Agno answers with the caller's own rows / writes them as the caller's
    assert (ours.status, ours.body["error"]) == (403, "forbidden")


@pytest.mark.parametrize(
    ("token_scopes", "body"),
    [
        (["evals:write", "agents:web-search-agent:run"], {"agent_id": AGENT}),
        (["evals:write", "agents:*:run"], {"agent_id": "no-such-agent"}),
        (["evals:write", "teams:no-such-team:run"], {"team_id": "no-such-team"}),
        (["evals:write", f"agents:{AGENT}:run"], {"team_id": "no-such-team"}),
        (ADMIN, {"agent_id": "no-such-agent"}),
    ],
)
async def test_eval_runs_check_run_on_the_target_named_in_the_body(
    token_scopes: list[str], body: dict[str, str], pair: Pair, mint: Mint, http: aiohttp.ClientSession
) -> None:
    headers = {"Authorization": f"Bearer {mint({'sub': 'alice', 'aud': pair.os_id, 'scopes': token_scopes})}"}
    payload = {**body, "eval_type": "accuracy", "input": "2+2", "expected_output": "4"}
    agno = await send(http, pair.agno, "POST", "/eval-runs", headers, json=payload)
    ours = await send(http, pair.proxy, "POST", "/eval-runs", headers, json=payload)
    assert agno.status in (403, 404)  # refused before any model is called
    assert ours.status == agno.status, (agno.body, ours.body)


async def test_forking_another_users_session_is_refused_on_both_sides(
    pair: Pair, mint: Mint, http: aiohttp.ClientSession
) -> None:
    path = f"/agents/{AGENT}/sessions/{BOB.session_id}/fork"
    agno, ours = await both(http, pair, mint, "alice per-item", "POST", path)
    # Agno looks the session up under the caller, finds no runs and answers 400; authproxy's owner lookup
    # finds no session of the caller's and answers 404 before the upstream is asked to fork anything.
    assert (agno.status, agno.body["detail"]) == (400, "Source session has no runs to fork.")
    assert (ours.status, ours.body["error"]) == (404, "not_found")
    agno, ours = await both(http, pair, mint, "bob per-item", "GET", "/sessions?type=agent")
    assert items(ours, "session_id") == items(agno, "session_id") == [(BOB.session_id, "bob")]
