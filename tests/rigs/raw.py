"""A raw-socket HTTP/1.1 client: bytes sent exactly as written (smuggling, malformed heads, odd targets) and
the answer bytes read until the proxy closes, split into responses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any


class HeaderLines:
    """`header(name)`: every value of one header, any case, in the order received."""

    headers: tuple[tuple[str, str], ...]

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


@dataclass(frozen=True)
class Answer(HeaderLines):
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def raw_http(port: int, data: bytes, *, host: str = "127.0.0.1") -> bytes:
    """Send `data` exactly as written on a fresh connection and read until the proxy closes it.

    No half-close: aiohttp drops a connection whose peer sent EOF, answer and all. Requests must end with
    `Connection: close` (or be ones the proxy refuses, which close the connection)."""
    reader, writer = await asyncio.open_connection(host, port)
    received = bytearray()
    try:
        writer.write(data)
        with contextlib.suppress(ConnectionError):
            await writer.drain()  # the proxy may answer and close before reading all of an oversized head
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                received += chunk
        return bytes(received)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def parse_answers(data: bytes) -> list[Answer]:
    """Split a byte stream into HTTP/1.1 responses (Content-Length or chunked bodies)."""
    answers: list[Answer] = []
    rest = data
    while rest:
        head, sep, rest = rest.partition(b"\r\n\r\n")
        assert sep, f"incomplete response head: {head[:200]!r}"
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = tuple((k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines))
        names = {k.lower(): v for k, v in headers}
        if "content-length" in names:
            size = int(names["content-length"])
            body, rest = rest[:size], rest[size:]
        elif names.get("transfer-encoding", "").lower() == "chunked":
            body, rest = _dechunk(rest)
        else:
            body, rest = rest, b""
        answers.append(Answer(int(status_line.split()[1]), headers, body))
    return answers


def _dechunk(data: bytes) -> tuple[bytes, bytes]:
    body = bytearray()
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            _, _, data = data.partition(b"\r\n")
            return bytes(body), data
        body += data[:size]
        data = data[size + 2 :]


async def exchange(port: int, data: bytes) -> list[Answer]:
    return parse_answers(await raw_http(port, data))


def request_bytes(
    target: str, *, method: str = "GET", headers: list[tuple[str, str]] | None = None, body: bytes = b""
) -> bytes:
    """One HTTP/1.1 request with Host and Connection: close; headers and target exactly as given."""
    lines = [f"{method} {target} HTTP/1.1", "Host: proxy.test"]
    lines += [f"{k}: {v}" for k, v in headers or ()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def raw_exchange(url: str, request: bytes) -> bytes:
    """`raw_http` to the host and port of an http:// URL."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return await raw_http(int(port), request, host=host)
