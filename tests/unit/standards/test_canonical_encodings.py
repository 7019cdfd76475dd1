"""The canonical writers against the readers upstreams run: whatever parts or pairs the proxy writes,
Starlette (python-multipart) and aiohttp read exactly those back, and so does the strict reader itself.

In-process, but the real parsers: Starlette's `Request.form()` and `Request.json()` over an ASGI receive,
aiohttp's `Request.post()` / `.json()` over a fed stream.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

from aiohttp import StreamReader
from aiohttp.base_protocol import BaseProtocol
from aiohttp.test_utils import make_mocked_request
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict
from starlette.datastructures import UploadFile
from starlette.requests import Request

from authproxy.standards.forms import read_urlencoded, write_urlencoded
from authproxy.standards.json_text import read_json, write_json
from authproxy.standards.media import Unreadable
from authproxy.standards.multipart import Part, read_multipart, write_multipart

# Field names and values as a browser may send them: any text but NUL and the characters RFC 7578 names
# cannot quote (the strict reader refuses `"`, `\` and controls in names; values are free UTF-8).
NAMES = st.text(
    alphabet=st.characters(exclude_categories=["Cs", "Cc"], exclude_characters='"\\'),
    min_size=1,
    max_size=12,
)
VALUES = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40)
# Non-empty filenames: aiohttp reads `filename=""` (a browser's empty file input) as a plain field, Starlette
# as a file; a rule never reads a file part (one named by a rule is refused), so that split changes nothing.
FILES = st.tuples(
    NAMES, st.binary(max_size=64), st.sampled_from([None, "application/octet-stream", "text/plain"])
)
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Read = list[tuple[str, object]]


async def starlette_read(content_type: str, body: bytes) -> Read:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers, "query_string": b""}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    out: Read = []
    async with Request(scope, receive).form() as form:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                out.append((name, (value.filename, await value.read())))
            else:
                out.append((name, value))
    return out


async def aiohttp_request(content_type: str, body: bytes) -> Any:
    stream = StreamReader(cast(BaseProtocol, _Protocol()), 2**16, loop=asyncio.get_running_loop())
    stream.feed_data(body)
    stream.feed_eof()
    headers = CIMultiDict({"Content-Type": content_type, "Content-Length": str(len(body))})
    return make_mocked_request("POST", "/", headers=headers, payload=stream)


class _Protocol:
    _reading_paused = False

    def pause_reading(self) -> None: ...

    def resume_reading(self, resume_parser: bool = True) -> None: ...


async def aiohttp_read(content_type: str, body: bytes) -> Read:
    form = await (await aiohttp_request(content_type, body)).post()
    out: Read = []
    for name, value in form.items():
        if isinstance(value, str):
            out.append((name, value))
        else:
            with value.file:
                out.append((name, (value.filename, value.file.read())))
    return out


def expected(parts: list[Part]) -> Read:
    return [(p.name, p.text if p.filename is None else (p.filename, p.data)) for p in parts]


@SETTINGS
@given(
    fields=st.lists(st.tuples(NAMES, VALUES), max_size=5),
    files=st.lists(st.tuples(NAMES, FILES), max_size=2),
)
async def test_multipart_written_by_the_proxy_is_read_alike_by_every_parser(
    fields: list[tuple[str, str]], files: list[tuple[str, tuple[str, bytes, str | None]]]
) -> None:
    parts = [Part(n, v.encode()) for n, v in fields]
    parts += [Part(n, data, filename, kind) for n, (filename, data, kind) in files]
    boundary, body = write_multipart(parts)
    content_type = f"multipart/form-data; boundary={boundary}"
    try:
        assert read_multipart(body, boundary) == parts
    except Unreadable:  # a name or filename the strict reader refuses is never written by the proxy
        return
    event("read")
    assert await starlette_read(content_type, body) == expected(parts)
    assert await aiohttp_read(content_type, body) == expected(parts)


@SETTINGS
@given(pairs=st.lists(st.tuples(st.text(min_size=1, max_size=10), VALUES), max_size=6))
async def test_urlencoded_written_by_the_proxy_is_read_alike_by_every_parser(
    pairs: list[tuple[str, str]],
) -> None:
    pairs = [(n, v) for n, v in pairs if "\x00" not in n]
    body = write_urlencoded(pairs)
    content_type = "application/x-www-form-urlencoded"
    assert read_urlencoded(body) == pairs
    assert await starlette_read(content_type, body) == pairs
    assert await aiohttp_read(content_type, body) == pairs


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | VALUES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(VALUES, inner, max_size=4),
    max_leaves=20,
)


@SETTINGS
@given(document=JSON)
async def test_json_written_by_the_proxy_is_read_alike_by_every_parser(document: object) -> None:
    body = write_json(document)
    assert read_json(body) == document
    scope = {"type": "http", "method": "POST", "path": "/", "headers": [], "query_string": b""}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    assert await Request(scope, receive).json() == document
    assert await (await aiohttp_request("application/json", body)).json() == document
    assert json.loads(body) == document
