"""The decision log: every denial's access line carries the reason, matched route, required and missing
scopes, subject and token id, never the token; the detail of allowed requests is sampled by
`logging.allow_sample_rate`, while every request keeps its access line."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog

from tests.rigs.config import AUDIENCE, config_text
from tests.rigs.keys import Mint, TokenFactory
from tests.rigs.polling import status_of
from tests.rigs.proxy import Launch, RunningProxy, proxies
from tests.rigs.upstream import RecordingUpstream

ACCESS_FIELDS = {"method", "path", "status", "decision", "reason", "route", "subject", "latency_ms"}


@pytest.fixture
async def launch() -> AsyncIterator[Launch]:
    async with proxies() as start:
        yield start


async def proxy_with_rate(
    launch: Launch, tmp_path: Path, upstream: RecordingUpstream, secret: bytes, rate: str | None
) -> RunningProxy:
    text = config_text(upstream.url, secret)
    if rate is not None:
        text = text.replace("  format: json\n", f"  format: json\n  allow_sample_rate: {rate}\n")
    path = tmp_path / "decision-log.yaml"
    path.write_text(text)
    return await launch(path)


def request_lines(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == "request"]


async def test_denial_logs_reason_route_scopes_subject_and_jti_but_never_the_token(
    launch: Launch,
    tmp_path: Path,
    upstream: RecordingUpstream,
    hs_secret: bytes,
    client: aiohttp.ClientSession,
    token: TokenFactory,
) -> None:
    proxy = await proxy_with_rate(launch, tmp_path, upstream, hs_secret, "0")  # denials are never sampled
    bearer = token("proxy:use", sub="alice", jti="jti-deny-1")
    with structlog.testing.capture_logs() as logs:
        assert await status_of(client, proxy.url + "/private/x", {"Authorization": f"Bearer {bearer}"}) == 403
        assert await status_of(client, proxy.url + "/items") == 401
    denied, missing = request_lines(logs)
    assert denied["decision"] == "deny"
    assert denied["error"] == "insufficient_scope"
    assert denied["reason"] == "insufficient scope for this route"
    assert denied["route"] == "GET /private/**"
    assert denied["required_scopes"] == ("private:read",)
    assert denied["missing_scopes"] == ("private:read",)
    assert denied["subject"] == "alice"
    assert denied["jti"] == "jti-deny-1"
    assert missing["error"] == "missing_token"
    assert missing["route"] == "* /**"
    assert missing["required_scopes"] == missing["missing_scopes"] == ()
    assert bearer not in json.dumps(logs, default=str)


async def test_invalid_token_denial_logs_no_unverified_claims(
    launch: Launch,
    tmp_path: Path,
    upstream: RecordingUpstream,
    hs_secret: bytes,
    client: aiohttp.ClientSession,
    mint: Mint,
) -> None:
    proxy = await proxy_with_rate(launch, tmp_path, upstream, hs_secret, None)
    forged = mint(
        {"sub": "mallory", "aud": AUDIENCE, "scopes": ["proxy:use"], "jti": "forged-1"}, key=b"x" * 64
    )
    with structlog.testing.capture_logs() as logs:
        assert await status_of(client, proxy.url + "/items", {"Authorization": f"Bearer {forged}"}) == 401
    [line] = request_lines(logs)
    assert line["error"] == "invalid_token"
    assert "signature" in line["reason"]
    assert line["subject"] is None
    assert "jti" not in line
    dumped = json.dumps(logs, default=str)
    assert "mallory" not in dumped and "forged-1" not in dumped and forged not in dumped


@pytest.mark.parametrize(("rate", "detailed"), [("0", False), ("0.0", False), ("1", True), (None, True)])
async def test_allow_detail_follows_allow_sample_rate_and_the_access_line_stays(
    rate: str | None,
    detailed: bool,
    launch: Launch,
    tmp_path: Path,
    upstream: RecordingUpstream,
    hs_secret: bytes,
    client: aiohttp.ClientSession,
    token: TokenFactory,
) -> None:
    proxy = await proxy_with_rate(launch, tmp_path, upstream, hs_secret, rate)
    bearer = {"Authorization": f"Bearer {token('proxy:use', sub='bob', jti='jti-allow-1')}"}
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            assert await status_of(client, proxy.url + "/items/1", bearer) == 200
        assert await status_of(client, proxy.url + "/private/1", bearer) == 403
    *allowed, denied = request_lines(logs)
    assert len(allowed) == 3
    for line in allowed:
        assert set(line) >= ACCESS_FIELDS
        assert (line["decision"], line["subject"], line["route"]) == ("allow", "bob", "* /**")
        assert ("jti" in line) is detailed
        assert ("required_scopes" in line) is detailed
    if detailed:
        assert allowed[0]["jti"] == "jti-allow-1"
        assert allowed[0]["required_scopes"] == ("proxy:use",)
    assert denied["jti"] == "jti-allow-1"
    assert denied["missing_scopes"] == ("private:read",)


async def test_partial_allow_sample_rate_details_some_allows_only(
    launch: Launch,
    tmp_path: Path,
    upstream: RecordingUpstream,
    hs_secret: bytes,
    client: aiohttp.ClientSession,
    token: TokenFactory,
) -> None:
    proxy = await proxy_with_rate(launch, tmp_path, upstream, hs_secret, "0.5")
    bearer = {"Authorization": f"Bearer {token('proxy:use', jti='j')}"}
    with structlog.testing.capture_logs() as logs:
        for _ in range(64):
            assert await status_of(client, proxy.url + "/items", bearer) == 200
    lines = request_lines(logs)
    assert len(lines) == 64  # every request keeps its access line
    sampled = sum("jti" in line for line in lines)
    assert 0 < sampled < 64  # both outcomes: a chance of 2**-63 each to see none
