"""What is checked is what arrives: bodies that real upstream parsers (FastAPI/Starlette with
python-multipart, aiohttp) would read differently from the proxy are refused (400, not one byte upstream),
and what is allowed reaches the upstream in the proxy's own canonical encoding, read there with the
caller's own id.

Each refusal checks the status, the body (`bad_request` and a fixed reason that never echoes the bytes) and
that nothing reached the upstream; each allowed request checks what the upstream's own parser read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from authproxy.standards.media import parse_media_type
from authproxy.standards.multipart import read_multipart
from tests.rigs.parsers import (
    CALLER,
    OTHER,
    Answer,
    Guarded,
    ParserUpstream,
    isolation_config,
    send,
    token_for,
)
from tests.rigs.proxy import Launch

pytestmark = pytest.mark.asyncio(loop_scope="module")

URLENCODED = "application/x-www-form-urlencoded"
JSON = "application/json"
MULTIPART_B = "multipart/form-data; boundary=B"
RUNS = "/agents/web-agent/runs"
PARSERS = ("starlette", "aiohttp")


@pytest.fixture(autouse=True)
def fresh(starlette_app: ParserUpstream, aiohttp_app: ParserUpstream) -> None:
    """The upstreams live for the module; each test counts from zero."""
    starlette_app.reset()
    aiohttp_app.reset()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def isolated(
    starlette_app: ParserUpstream,
    module_launch: Launch,
    hs_secret: bytes,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Guarded]:
    """FastAPI standing in for AgentOS, behind `preset: agentos` with `user_isolation: true`."""
    path = tmp_path_factory.mktemp("isolated") / "isolated.yaml"
    path.write_text(isolation_config(starlette_app.url, hs_secret))
    yield Guarded((await module_launch(path, grace=1.0)).url, starlette_app)


@pytest.fixture
def writer(hs_secret: bytes) -> str:
    """A token for `alice` holding `items:write`, what the `/form` and `/json` routes need."""
    return token_for(hs_secret, "items:write")


def part(disposition: str, value: bytes, *headers: str) -> bytes:
    """One part: `Content-Disposition: form-data; <disposition>`, then `headers`, CRLF framing."""
    head = f"Content-Disposition: form-data; {disposition}\r\n" + "".join(f"{h}\r\n" for h in headers)
    return head.encode() + b"\r\n" + value


def multipart(boundary: str, *parts: bytes) -> bytes:
    """A well-framed body of `parts` (a test breaks the framing on purpose where it means to)."""
    dash = b"--" + boundary.encode("latin-1")
    return b"".join(dash + b"\r\n" + p + b"\r\n" for p in parts) + dash + b"--\r\n"


def assert_refused(answer: Answer, up: ParserUpstream, *words: str) -> None:
    """400 `bad_request` with a reason naming one of `words`, and not one byte at the upstream."""
    assert answer.status == 400, f"{answer.status} {answer.body}"
    error = answer.body["error"]
    code = error if isinstance(error, str) else error["data"]["error"]  # MCP answers a JSON-RPC error
    detail = answer.body["detail"]
    assert code == "bad_request"
    assert isinstance(detail, str) and detail.isprintable(), detail
    assert any(word in detail.lower() for word in words), detail
    up.assert_nothing_forwarded()


async def post(
    http: aiohttp.ClientSession, via: Guarded, path: str, body: bytes, content_type: str, token: str
) -> Answer:
    return await send(http, via.proxy + path, body, content_type, token)


# --- impersonation under user isolation -----------------------------------------------------------------

BARE_LF_CLOSE = (
    b'--B\r\nContent-Disposition: form-data; name="message"\r\n\r\nhello\n--B--\n'
    + b'\r\n--B\r\nContent-Disposition: form-data; name="user_id"\r\n\r\n'
    + OTHER.encode()
    + b"\r\n--B--\r\n"
)


@pytest.mark.parametrize("policy", ["preset agentos, user_isolation", "pin form.user_id"])
async def test_a_close_delimiter_after_a_bare_lf_cannot_run_as_another_user(
    policy: str,
    isolated: Guarded,
    guarded: dict[str, Guarded],
    module_http: aiohttp.ClientSession,
    hs_secret: bytes,
) -> None:
    # A reader that ends the body at `\n--B--` sees no user_id (and adds the caller's); python-multipart
    # reads on and finds user_id=user_b in the part after it.
    via = isolated if policy.startswith("preset") else guarded["starlette"]
    token = token_for(hs_secret, "agents:run")
    answer = await post(module_http, via, RUNS, BARE_LF_CLOSE, MULTIPART_B, token)
    assert_refused(answer, via.upstream, "multipart", "boundary")


# --- multipart framing and naming ----------------------------------------------------------------------

# (Content-Type, the boundary one reading takes, the boundary another takes)
TWO_BOUNDARIES = {
    "Boundary and boundary": ("multipart/form-data; Boundary=A; boundary=B", "A", "B"),
    "boundary* and boundary": ("multipart/form-data; boundary*=UTF-8''A; boundary=B", "A", "B"),
    "comma in the token": ("multipart/form-data; boundary=A,B", "A", "A,B"),
    "space in the token": ("multipart/form-data; boundary=A B", "A", "A B"),
    "quoted-pair quote": ('multipart/form-data; boundary="A\\"B"', 'A"B', 'A\\"B'),
    "quoted-pair letter": ('multipart/form-data; boundary="A\\B"', "AB", "A\\B"),
}


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("case", TWO_BOUNDARIES, ids=list(TWO_BOUNDARIES))
async def test_a_boundary_read_two_ways_is_refused(
    case: str, parser: str, guarded: dict[str, Guarded], module_http: aiohttp.ClientSession, writer: str
) -> None:
    content_type, first, second = TWO_BOUNDARIES[case]
    body = multipart(second, part('name="user_id"', OTHER.encode())) + multipart(
        first, part('name="user_id"', CALLER.encode()), part('name="note"', b"x")
    )
    via = guarded[parser]
    answer = await post(module_http, via, "/form", body, content_type, writer)
    assert_refused(answer, via.upstream, "boundary", "content-type", "multipart")


async def test_an_extended_name_star_parameter_is_refused(
    guarded: dict[str, Guarded], module_http: aiohttp.ClientSession, writer: str
) -> None:
    # aiohttp takes `name*` over `name` and reads this part as user_id=user_b.
    body = multipart("B", part("name=\"note\"; name*=UTF-8''user_id", OTHER.encode()))
    via = guarded["aiohttp"]
    answer = await post(module_http, via, "/form", body, MULTIPART_B, writer)
    assert_refused(answer, via.upstream, "multipart", "name", "disposition")


async def test_a_name_given_twice_in_one_disposition_is_refused(
    guarded: dict[str, Guarded], module_http: aiohttp.ClientSession, writer: str
) -> None:
    # Starlette keeps the last `name` and reads this part as user_id=user_b.
    body = multipart("B", part('name="note"; name="user_id"', OTHER.encode()))
    via = guarded["starlette"]
    answer = await post(module_http, via, "/form", body, MULTIPART_B, writer)
    assert_refused(answer, via.upstream, "multipart", "name", "disposition")


@pytest.mark.parametrize("parser", PARSERS)
async def test_a_content_transfer_encoding_part_is_refused(
    parser: str, guarded: dict[str, Guarded], module_http: aiohttp.ClientSession, writer: str
) -> None:
    # base64 of "alice": a decoding reader sees the caller's id; Starlette and aiohttp read "YWxpY2U=".
    body = multipart("B", part('name="user_id"', b"YWxpY2U=", "Content-Transfer-Encoding: base64"))
    via = guarded[parser]
    answer = await post(module_http, via, "/form", body, MULTIPART_B, writer)
    assert_refused(answer, via.upstream, "multipart", "transfer-encoding")


FIELD = part('name="user_id"', CALLER.encode())
# Framings some parser reads another way; each must be refused by a strict reader.
LOOSE_FRAMINGS = {
    "bare CR before a delimiter": b"--B\r\n" + FIELD + b"\r--B--\r\n",
    "bare LF before a delimiter": b"--B\r\n" + FIELD + b"\n--B--\r\n",
    "a preamble": b"hello\r\n" + multipart("B", FIELD),
    "an epilogue": multipart("B", FIELD) + b"more\r\n",
    "the boundary inside a value": multipart("B", part('name="note"', b"x--B"), FIELD),
    "a nested multipart part": multipart(
        "B", FIELD, part('name="inner"', multipart("C", FIELD), "Content-Type: multipart/mixed; boundary=C")
    ),
    "a part charset other than UTF-8": multipart(
        "B", FIELD, part('name="note"', b"x+ACY-", "Content-Type: text/plain; charset=utf-7")
    ),
    "two dispositions in one part": multipart(
        "B", part('name="user_id"', CALLER.encode(), 'Content-Disposition: form-data; name="note"')
    ),
}


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("framing", LOOSE_FRAMINGS, ids=list(LOOSE_FRAMINGS))
async def test_a_multipart_body_framed_loosely_is_refused(
    framing: str,
    parser: str,
    guarded: dict[str, Guarded],
    module_http: aiohttp.ClientSession,
    writer: str,
) -> None:
    via = guarded[parser]
    answer = await post(module_http, via, "/form", LOOSE_FRAMINGS[framing], MULTIPART_B, writer)
    assert_refused(answer, via.upstream, "multipart", "boundary", "part")


# --- charsets ------------------------------------------------------------------------------------------

UTF7_QUOTE = b"+ACI-"  # `"` in UTF-7; read as ASCII it is five harmless characters


async def test_a_utf7_form_is_refused(
    guarded: dict[str, Guarded], module_http: aiohttp.ClientSession, writer: str
) -> None:
    # Decoded as UTF-7 (aiohttp honours the charset) `+ACY-` is `&` and `+AD0-` is `=`: a second user_id.
    body = b"user_id=alice&note=x+ACY-user_id+AD0-user_b"
    via = guarded["aiohttp"]
    answer = await post(module_http, via, "/form", body, f"{URLENCODED}; charset=utf-7", writer)
    assert_refused(answer, via.upstream, "charset", "utf-8")


async def test_a_utf7_json_body_is_refused(
    guarded: dict[str, Guarded], module_http: aiohttp.ClientSession, writer: str
) -> None:
    # Read as UTF-8, one string; decoded as UTF-7, {"user_id":"alice","note":"x","user_id":"user_b"}.
    q = UTF7_QUOTE
    body = b'{"user_id":"alice","note":"x' + q + b"," + q + b"user_id" + q + b":" + q + b'user_b"}'
    via = guarded["aiohttp"]
    answer = await post(module_http, via, "/json", body, f"{JSON}; charset=utf-7", writer)
    assert_refused(answer, via.upstream, "charset", "utf-8")


# --- JSON depth ---------------------------------------------------------------------------------------

DEEP = b"[" * 1500 + b"]" * 1500  # 3 KB, far under any body bound; past every recursive parser's limit


async def test_json_nested_1500_deep_on_a_content_route_is_a_400_not_a_500(
    guarded: dict[str, Guarded], module_http: aiohttp.ClientSession, writer: str
) -> None:
    body = b'{"user_id":"alice","x":' + DEEP + b"}"
    via = guarded["starlette"]
    answer = await post(module_http, via, "/json", body, JSON, writer)
    assert_refused(answer, via.upstream, "deep", "nest", "depth")


async def test_json_nested_1500_deep_on_mcp_is_a_400_not_a_500(
    guarded: dict[str, Guarded], module_http: aiohttp.ClientSession, hs_secret: bytes
) -> None:
    body = (
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call",'
        + b'"params":{"name":"read_note","arguments":{"note_id":"n1","x":'
        + DEEP
        + b"}}}"
    )
    via = guarded["aiohttp"]
    answer = await post(module_http, via, "/mcp", body, JSON, token_for(hs_secret, "notes:n1:read"))
    assert_refused(answer, via.upstream, "deep", "nest", "depth")


# --- control characters in ids -------------------------------------------------------------------------


async def test_a_control_character_in_an_item_id_named_in_the_body_is_refused(
    guarded: dict[str, Guarded], module_http: aiohttp.ClientSession, hs_secret: bytes
) -> None:
    body = json.dumps({"agent_id": "p2\u0001", "input": "x"}).encode()
    via = guarded["starlette"]
    token = token_for(hs_secret, "evals:write", "agents:p1:run")
    answer = await post(module_http, via, "/json/evals", body, JSON, token)
    assert_refused(answer, via.upstream, "control", "id")


async def test_a_control_character_in_a_tool_argument_bound_to_an_item_scope_is_refused(
    guarded: dict[str, Guarded], module_http: aiohttp.ClientSession, hs_secret: bytes
) -> None:
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "read_note", "arguments": {"note_id": "n2\r\nX-Injected: 1"}},
    }
    via = guarded["aiohttp"]
    answer = await post(
        module_http, via, "/mcp", json.dumps(call).encode(), JSON, token_for(hs_secret, "notes:n1:read")
    )
    assert_refused(answer, via.upstream, "control", "id")


# --- urlencoded separators -----------------------------------------------------------------------------


async def test_a_semicolon_as_a_form_separator_is_refused(
    guarded: dict[str, Guarded], module_http: aiohttp.ClientSession, writer: str
) -> None:
    # A reader that also splits on `;` (as Python's parse_qsl did until 3.9.2) finds user_id=user_b.
    via = guarded["starlette"]
    answer = await post(module_http, via, "/form", b"note=x;user_id=user_b", URLENCODED, writer)
    assert_refused(answer, via.upstream, "form", "separator", "&")


# --- what is allowed arrives in the proxy's own encoding --------------------------------------------------


def content_length(up: ParserUpstream) -> int:
    arrived = up.only()
    (length,) = arrived.header("Content-Length")
    assert int(length) == len(arrived.body)
    assert arrived.header("Transfer-Encoding") == []
    return int(length)


async def test_an_allowed_json_body_arrives_compact(
    guarded: dict[str, Guarded], module_http: aiohttp.ClientSession, writer: str
) -> None:
    via = guarded["starlette"]
    sent = b'{"a": 1, "user_id": "alice"}'
    answer = await post(module_http, via, "/json", sent, JSON, writer)
    assert answer.reading().json == {"a": 1, "user_id": CALLER}
    assert via.upstream.only().body == b'{"a":1,"user_id":"alice"}'
    assert content_length(via.upstream) == len(b'{"a":1,"user_id":"alice"}')
    assert parse_media_type(via.upstream.only().header("Content-Type")[0]).essence == JSON


async def test_an_allowed_form_arrives_percent_encoded(
    guarded: dict[str, Guarded], module_http: aiohttp.ClientSession, writer: str
) -> None:
    via = guarded["starlette"]
    sent = b"user_id=alice&note=a+b%2fc~%C3%A9"
    answer = await post(module_http, via, "/form", sent, URLENCODED, writer)
    assert answer.reading().fields == [("user_id", CALLER), ("note", "a b/c~\u00e9")]
    assert via.upstream.only().body == b"user_id=alice&note=a%20b%2Fc~%C3%A9"
    content_length(via.upstream)


async def test_an_allowed_multipart_body_is_rebuilt_and_its_file_arrives_unchanged(
    guarded: dict[str, Guarded], module_http: aiohttp.ClientSession, writer: str
) -> None:
    via = guarded["starlette"]
    data = bytes(range(256)) * 4  # every byte value, CR and LF among them
    sent = multipart(
        "client-chosen-boundary",
        part('name="note"', "caf\u00e9".encode()),
        part('name="user_id"', CALLER.encode()),
        part('name="upload"; filename="data.bin"', data, "Content-Type: application/octet-stream"),
    )
    content_type = "multipart/form-data; boundary=client-chosen-boundary"
    answer = await post(module_http, via, "/form", sent, content_type, writer)
    file_seen = {"filename": "data.bin", "sha256": hashlib.sha256(data).hexdigest()}
    assert answer.reading().fields == [("note", "caf\u00e9"), ("user_id", CALLER), ("upload", file_seen)]
    arrived = via.upstream.only()
    media = parse_media_type(arrived.header("Content-Type")[0])
    boundary = media.param("boundary")
    assert media.essence == "multipart/form-data"
    assert boundary is not None and boundary != "client-chosen-boundary"
    assert arrived.body != sent
    content_length(via.upstream)
    parts = read_multipart(arrived.body, boundary)  # CRLF framing a strict reader accepts
    assert [(p.name, p.filename, p.data) for p in parts] == [
        ("note", None, "caf\u00e9".encode()),
        ("user_id", None, CALLER.encode()),
        ("upload", "data.bin", data),
    ]
