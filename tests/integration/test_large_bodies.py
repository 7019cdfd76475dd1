"""Bodies of any size stream through: 1 GiB each way through `authproxy serve`, with the proxy's memory
growth bounded, and mid-size chunked bodies through the in-process proxy."""

from __future__ import annotations

import hashlib
from pathlib import Path

import aiohttp
import pytest

from tests.rigs.config import config_text
from tests.rigs.proxy import RunningProxy
from tests.rigs.serve import ServeFactory, ServeProcess
from tests.rigs.upstream import RecordingUpstream, pattern_body, pattern_hash

GIB = 1024**3
MIB = 1024**2
RSS_GROWTH_LIMIT_KIB = 100 * 1024


@pytest.fixture
async def served(
    serve: ServeFactory, upstream: RecordingUpstream, tmp_path: Path, hs_secret: bytes
) -> ServeProcess:
    config = tmp_path / "serve.yaml"
    config.write_text(config_text(upstream.url, hs_secret))
    return await serve(config)


async def download_hash(resp: aiohttp.ClientResponse) -> tuple[str, int]:
    digest, length = hashlib.sha256(), 0
    async for chunk in resp.content.iter_chunked(MIB):
        digest.update(chunk)
        length += len(chunk)
    return digest.hexdigest(), length


async def test_one_gib_each_way_streams_with_bounded_memory(
    served: ServeProcess, upstream: RecordingUpstream, client: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    async with client.get(served.url + "/warm-up", headers=auth) as resp:
        assert resp.status == 200
    before = served.rss_kib("VmRSS")

    headers = {**auth, "Content-Length": str(GIB), "Content-Type": "application/octet-stream"}
    async with client.post(served.url + "/upload", data=pattern_body(GIB), headers=headers) as resp:
        assert resp.status == 200
        assert await resp.json() == {"raw_path": "/upload", "sha256": pattern_hash(GIB), "length": GIB}
    assert upstream.last().header("Content-Length") == [str(GIB)]

    async with client.get(served.url + f"/download/{GIB}", headers=auth) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Length"] == str(GIB)
        assert await download_hash(resp) == (pattern_hash(GIB), GIB)

    growth = served.rss_kib("VmHWM") - before  # the peak while both bodies passed, not just the end
    assert growth < RSS_GROWTH_LIMIT_KIB, f"proxy RSS grew by {growth} KiB"


async def test_chunked_body_streams_both_ways(
    proxy: RunningProxy, upstream: RecordingUpstream, client: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    size = 48 * MIB + 123
    async with client.put(proxy.url + "/upload", data=pattern_body(size), headers=auth) as resp:
        assert resp.status == 200
    seen = upstream.last()
    assert (seen.body_sha256, seen.body_length) == (pattern_hash(size), size)
    assert seen.header("Transfer-Encoding") == ["chunked"]

    async with client.get(proxy.url + f"/download/{size}?chunked=1", headers=auth) as resp:
        assert resp.headers["Transfer-Encoding"] == "chunked"
        assert await download_hash(resp) == (pattern_hash(size), size)
