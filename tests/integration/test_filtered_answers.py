"""Answers the proxy filters (AgentOS listings, `GET /config`, response checks) through a real proxy in
front of an upstream that honours `Range` and answers the statuses the test sets: the request goes up
without `Range`/`If-Range` (a 206 would be an unfiltered slice), and an answer other than 200 passes only
when it holds nothing the filter would cut; otherwise it is a 502 carrying none of the upstream's bytes."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.rigs.config import preset_config_text
from tests.rigs.keys import TokenFactory
from tests.rigs.proxy import Launch
from tests.rigs.tapped import TappedUpstream, serving_tapped

ENTITY_ROUTE = '    "GET /entity/{id}": {scopes: [items:read], response: {json:/user_id: user_id}}\n'
AGENTS = [{"id": "a1", "name": "one"}, {"id": "a2", "name": "two (secret)"}]
CONFIG_DOC = {"os_id": "os", "agents": AGENTS, "teams": [], "workflows": []}
ENTITY = {"user_id": "user-1", "text": "the entity"}
RANGE = {"Range": "bytes=0-30", "If-Range": '"v1"'}


@dataclass
class RangedUpstream(TappedUpstream):
    """The tapped upstream serving /agents, /config and /entity/1 with `status` (and `body`); a request
    with `Range` gets the 206 slice an HTTP server would send."""

    status: int = 200
    body: bytes | None = None  # instead of the document, when set
    encoding: str | None = None  # the answer's Content-Encoding, when set (the body is gzipped then)

    async def answer(self, request: web.BaseRequest) -> web.StreamResponse | None:
        document = {"/agents": AGENTS, "/config": CONFIG_DOC, "/entity/1": ENTITY}[request.path]
        body = json.dumps(document).encode() if self.body is None else self.body
        ranged = request.headers.get("Range", "").removeprefix("bytes=").split("-")
        if len(ranged) == 2 and ranged[0].isdigit() and ranged[1].isdigit():
            start, end = int(ranged[0]), int(ranged[1])
            headers = {
                "Content-Range": f"bytes {start}-{end}/{len(body)}",
                "Content-Type": "application/json",
            }
            return web.Response(status=206, body=body[start : end + 1], headers=headers)
        validators = {"ETag": '"v1"', "Digest": "sha-256=abc", "Content-MD5": "x", "X-Kept": "yes"}
        if self.encoding is not None:
            validators["Content-Encoding"] = self.encoding
            body = gzip.compress(body, mtime=0) if body else body
        return web.Response(
            status=self.status, body=body, content_type="application/json", headers=validators
        )

    def unranged(self) -> bool:
        """The last request went up without Range and If-Range."""
        return self.requests[-1].header("Range") == self.requests[-1].header("If-Range") == []


@pytest.fixture
async def ranged() -> AsyncIterator[RangedUpstream]:
    async with serving_tapped(RangedUpstream()) as up:
        yield up


@pytest.fixture
async def proxy(ranged: RangedUpstream, tmp_path: Path, hs_secret: bytes, launch: Launch) -> str:
    path = tmp_path / "filtered.yaml"
    path.write_text(preset_config_text(ranged.url, hs_secret, routes=ENTITY_ROUTE))
    return (await launch(path, grace=1.0)).url


async def get(url: str, token: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    sent = {"Authorization": f"Bearer {token}", **(headers or {})}
    async with aiohttp.ClientSession() as http, http.get(url, headers=sent) as answer:
        return answer.status, await answer.read()


LISTING = ("/agents", ("agents:a1:read",))
ROSTER = ("/config", ("config:read", "agents:a1:read"))
FILTERED = {"listing": LISTING, "config": ROSTER}
CHECKED = ("/entity/1", ("items:read",))


@pytest.mark.parametrize(("path", "scopes"), FILTERED.values(), ids=FILTERED.keys())
async def test_a_filtered_answer_is_asked_for_without_range(
    proxy: str, ranged: RangedUpstream, token: TokenFactory, path: str, scopes: tuple[str, ...]
) -> None:
    status, body = await get(proxy + path, token(*scopes), RANGE)
    assert status == 200
    assert b"secret" not in body
    document = json.loads(body)
    items = document if isinstance(document, list) else document["agents"]
    assert [item["id"] for item in items] == ["a1"]
    assert ranged.unranged()
    assert ranged.requests[-1].header("Accept-Encoding") == ["identity"]


@pytest.mark.parametrize(("path", "scopes"), FILTERED.values(), ids=FILTERED.keys())
async def test_a_filtered_answer_carries_no_validator_or_digest_of_the_uncut_body(
    proxy: str, token: TokenFactory, path: str, scopes: tuple[str, ...]
) -> None:
    sent = {"Authorization": f"Bearer {token(*scopes)}"}
    async with aiohttp.ClientSession() as http, http.get(proxy + path, headers=sent) as answer:
        assert answer.status == 200
        body = await answer.read()
        assert answer.headers.get("X-Kept") == "yes"
        assert not {"ETag", "Digest", "Content-MD5"} & set(answer.headers)
        assert answer.headers["Content-Length"] == str(len(body))


async def test_a_checked_response_is_asked_for_without_range(
    proxy: str, ranged: RangedUpstream, token: TokenFactory
) -> None:
    status, body = await get(proxy + "/entity/1", token("items:read"), RANGE)
    assert (status, json.loads(body)) == (200, ENTITY)
    assert ranged.unranged()


@pytest.mark.parametrize(("path", "scopes"), FILTERED.values(), ids=FILTERED.keys())
@pytest.mark.parametrize("upstream_status", [201, 203, 206, 404, 500])
async def test_a_non_200_answer_holding_what_is_filtered_is_a_502(
    proxy: str,
    ranged: RangedUpstream,
    token: TokenFactory,
    path: str,
    scopes: tuple[str, ...],
    upstream_status: int,
) -> None:
    ranged.status = upstream_status
    status, body = await get(proxy + path, token(*scopes))
    assert status == 502
    assert json.loads(body) == {
        "detail": f"the {'listing' if path == '/agents' else '/config'} response is not a 200 and holds "
        "what must be filtered",
        "error": "upstream_unavailable",
    }
    assert len(ranged.requests) == 1


@pytest.mark.parametrize(("path", "scopes"), FILTERED.values(), ids=FILTERED.keys())
@pytest.mark.parametrize(
    "upstream_body",
    [b'{"detail": "Not Found"}', b"<html>Bad Gateway</html>", b""],
    ids=["json", "html", "empty"],
)
async def test_a_non_200_answer_holding_nothing_to_filter_passes_as_it_came(
    proxy: str,
    ranged: RangedUpstream,
    token: TokenFactory,
    path: str,
    scopes: tuple[str, ...],
    upstream_body: bytes,
) -> None:
    ranged.status, ranged.body = 404, upstream_body
    assert await get(proxy + path, token(*scopes)) == (404, upstream_body)


@pytest.mark.parametrize(("path", "scopes"), [*FILTERED.values(), CHECKED], ids=[*FILTERED, "checked"])
@pytest.mark.parametrize("encoding", ["gzip", "identity, gzip"])
async def test_a_compressed_answer_to_filter_or_check_is_a_502(
    proxy: str, ranged: RangedUpstream, token: TokenFactory, path: str, scopes: tuple[str, ...], encoding: str
) -> None:
    ranged.encoding = encoding  # sent although the proxy asked for identity
    status, body = await get(proxy + path, token(*scopes))
    assert (status, json.loads(body)) == (
        502,
        {
            "detail": "the response is compressed and cannot be filtered or checked",
            "error": "upstream_unavailable",
        },
    )
    assert ranged.requests[-1].header("Accept-Encoding") == ["identity"]


@pytest.mark.parametrize(
    ("path", "scopes", "upstream_status"), [(*LISTING, 304), (*ROSTER, 404), (*CHECKED, 404)]
)
async def test_a_compressed_answer_with_nothing_to_read_passes_as_it_came(
    proxy: str,
    ranged: RangedUpstream,
    token: TokenFactory,
    path: str,
    scopes: tuple[str, ...],
    upstream_status: int,
) -> None:
    """A 304 names the encoding of a body it does not carry; a response check reads only a 2xx."""
    ranged.status, ranged.encoding = upstream_status, "gzip"
    ranged.body = b"" if path != CHECKED[0] else None
    sent = {"Authorization": f"Bearer {token(*scopes)}"}
    async with (
        aiohttp.ClientSession(auto_decompress=False) as http,
        http.get(proxy + path, headers=sent) as answer,
    ):
        assert answer.status == upstream_status
        assert answer.headers["Content-Encoding"] == "gzip"
        body = await answer.read()
    assert body == (b"" if path != CHECKED[0] else gzip.compress(json.dumps(ENTITY).encode(), mtime=0))
