"""ClientExchange: the head written for an answer and how its body is framed (RFC 9112 §6)."""

from __future__ import annotations

from multidict import CIMultiDict

from authproxy.proxy.client_body import BodyStream
from authproxy.proxy.client_exchange import ClientExchange


class Wire:
    """The connection side of an exchange, keeping what was written."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        return None

    def abort(self) -> None:
        self.data += b"<abort>"


def _exchange(
    wire: Wire,
    *,
    method: str = "GET",
    version: tuple[int, int] = (1, 1),
    keep_alive: bool = True,
    headers: dict[str, str] | None = None,
    body_done: bool = True,
) -> ClientExchange:
    body = BodyStream(lambda on: None)
    if body_done:
        body.feed_eof()
    fields = CIMultiDict({"Host": "proxy.test", **(headers or {})})
    return ClientExchange(
        wire,  # type: ignore[arg-type]  # only write/drain/abort are used here
        method,
        "/x",
        version,
        fields,
        body,
        keep_alive=keep_alive,
        chunked=not body_done,
        remote="127.0.0.1",
        scheme="http",
        ssl_object=None,
    )


def _head(data: bytes | bytearray) -> tuple[str, dict[str, str], bytes]:
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    return lines[0], dict(line.split(": ", 1) for line in lines[1:]), body


async def test_a_whole_answer_gets_its_length_and_a_date() -> None:
    wire = Wire()
    await _exchange(wire).respond(200, [("Content-Type", "text/plain")], b"hello")
    status, fields, body = _head(wire.data)
    assert status == "HTTP/1.1 200 OK"
    assert fields["Content-Length"] == "5" and "Date" in fields and "Connection" not in fields
    assert body == b"hello"


async def test_a_streamed_answer_is_chunked_to_an_http11_client() -> None:
    wire = Wire()
    exchange = _exchange(wire)
    await exchange.start(200, [("Content-Type", "text/event-stream")], first=b"data: 1\n\n")
    await exchange.write(b"data: 2\n\n")
    await exchange.finish()
    _, fields, body = _head(wire.data)
    assert fields["Transfer-Encoding"] == "chunked"
    assert body == b"9\r\ndata: 1\n\n\r\n9\r\ndata: 2\n\n\r\n0\r\n\r\n"
    assert exchange.finished and exchange.keep_alive


async def test_a_streamed_answer_to_http10_ends_with_the_connection() -> None:
    wire = Wire()
    exchange = _exchange(wire, version=(1, 0), keep_alive=True)
    await exchange.start(200, [])
    await exchange.finish(b"all")
    status, fields, body = _head(wire.data)
    assert status == "HTTP/1.0 200 OK"
    assert "Transfer-Encoding" not in fields and "Connection" not in fields
    assert body == b"all" and not exchange.keep_alive


async def test_http10_keep_alive_is_said() -> None:
    wire = Wire()
    await _exchange(wire, version=(1, 0)).respond(200, [], b"x")
    assert _head(wire.data)[1]["Connection"] == "keep-alive"


async def test_head_and_bodiless_statuses_carry_no_body() -> None:
    wire = Wire()
    await _exchange(wire, method="HEAD").respond(200, [("Content-Length", "42")], b"")
    _, fields, body = _head(wire.data)
    assert fields["Content-Length"] == "42" and body == b""  # the length of the GET answer, as given
    for status in (204, 304):
        wire = Wire()
        await _exchange(wire).respond(status, [("Content-Length", "3")], b"abc")
        _, fields, body = _head(wire.data)
        assert "Content-Length" not in fields and "Transfer-Encoding" not in fields and body == b""


async def test_our_fields_replace_every_copy_and_framing_fields_given_are_ignored() -> None:
    wire = Wire()
    exchange = _exchange(wire)
    exchange.answer_headers = (("RateLimit", '"default";r=9;t=1'),)
    given = [("ratelimit", "forged"), ("Transfer-Encoding", "chunked"), ("Connection", "keep-alive")]
    await exchange.respond(200, given, b"ok")
    head = bytes(wire.data).partition(b"\r\n\r\n")[0].decode()
    assert head.count("RateLimit") == 1 and '"default";r=9;t=1' in head
    assert "forged" not in head and "Transfer-Encoding" not in head and "Connection" not in head


async def test_not_keeping_alive_is_said_to_an_http11_client() -> None:
    wire = Wire()
    await _exchange(wire, keep_alive=False).respond(401, [], b"{}")
    assert _head(wire.data)[1]["Connection"] == "close"


async def test_continue_is_sent_once_and_only_when_asked() -> None:
    wire = Wire()
    exchange = _exchange(wire, headers={"Expect": "100-continue"}, body_done=False)
    await exchange.send_continue()
    await exchange.send_continue()
    assert bytes(wire.data) == b"HTTP/1.1 100 Continue\r\n\r\n"
    wire = Wire()
    await _exchange(wire, body_done=False).send_continue()
    assert bytes(wire.data) == b""


async def test_an_answer_without_the_invited_upload_closes_the_connection() -> None:
    # RFC 9110 §10.1.1: the client was never told to send its body; what follows may be that body.
    wire = Wire()
    exchange = _exchange(wire, headers={"Expect": "100-continue"}, body_done=False)
    await exchange.respond(401, [], b"{}")
    assert _head(wire.data)[1]["Connection"] == "close" and not exchange.keep_alive


async def test_abort_marks_the_connection_as_not_reusable() -> None:
    wire = Wire()
    exchange = _exchange(wire)
    await exchange.start(200, [])
    exchange.abort()
    assert wire.data.endswith(b"<abort>") and not exchange.keep_alive
