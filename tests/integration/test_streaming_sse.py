"""Server-Sent Events: each event reaches the client as it is written, while the upstream holds the stream."""

from __future__ import annotations

import aiohttp

from tests.rigs.proxy import RunningProxy
from tests.rigs.upstream import RecordingUpstream


async def test_sse_first_event_arrives_while_upstream_holds_stream_open(
    proxy: RunningProxy, upstream: RecordingUpstream, client: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    async with client.get(proxy.url + "/sse", headers=auth) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/event-stream"
        assert resp.headers["Cache-Control"] == "no-cache"
        # The upstream is parked on sse_release: this line can only be read if the proxy flushed it.
        assert await resp.content.readuntil(b"\n\n") == b"event: step\ndata: first\n\n"
        assert not upstream.sse_release.is_set()
        upstream.sse_release.set()
        assert await resp.content.readuntil(b"\n\n") == b"event: step\ndata: second\n\n"
        assert await resp.content.read() == b""


async def test_sse_stream_is_chunked_not_buffered_to_a_length(
    proxy: RunningProxy, upstream: RecordingUpstream, client: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    async with client.get(proxy.url + "/sse", headers=auth) as resp:
        assert "Content-Length" not in resp.headers
        assert resp.headers["Transfer-Encoding"] == "chunked"
        await resp.content.readuntil(b"\n\n")
        upstream.sse_release.set()
        await resp.read()


async def test_sse_client_hanging_up_releases_the_upstream_stream(
    proxy: RunningProxy, upstream: RecordingUpstream, auth: dict[str, str]
) -> None:
    async with aiohttp.ClientSession() as own, own.get(proxy.url + "/sse", headers=auth) as resp:
        await resp.content.readuntil(b"\n\n")
    # The client is gone; the proxy must hang up on the upstream too, not hold its stream until it ends.
    await upstream.sse_gone.wait()
    assert not upstream.sse_release.is_set()


async def test_sse_head_reaches_client_before_any_event(
    proxy: RunningProxy, upstream: RecordingUpstream, client: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    # The upstream sent its head and holds the body: the client sees the head now, not with the first event.
    async with client.get(proxy.url + "/sse-quiet", headers=auth) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/event-stream"
        assert not upstream.sse_release.is_set()
        upstream.sse_release.set()
        assert await resp.content.readuntil(b"\n\n") == b"event: step\ndata: late\n\n"
        assert await resp.content.read() == b""
