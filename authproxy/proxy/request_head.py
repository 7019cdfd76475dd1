"""A request head as the proxied port reads it: our limits on top of llhttp's strict mode, the fields as
they go upstream, and the fixed answer to a head that is refused.

llhttp (in its strict mode) refuses Content-Length with Transfer-Encoding, a repeated Content-Length,
obs-fold, bare CR or LF and a malformed chunk size. On top: the request target (414), one field and the
field count (431), a head that cannot fit them (431), an HTTP version other than 1.0 and 1.1, a repeated
singleton field, a missing Host on HTTP/1.1, a transfer coding on HTTP/1.0, and a transfer coding other than
a lone `chunked` (400).
"""

from __future__ import annotations

from collections.abc import Iterable

import httptools
from aiohttp import hdrs
from aiohttp.http_parser import SINGLETON_HEADERS
from multidict import CIMultiDict, istr

from authproxy.answers.table import OwnAnswer, render_answer
from authproxy.auth.verify import MAX_TOKEN_LENGTH
from authproxy.proxy.client_exchange import reason_phrase

__all__ = [
    "HEAD_TIMEOUT",
    "MAX_FIELD_SIZE",
    "MAX_HEAD",
    "MAX_HEADERS",
    "MAX_LINE_SIZE",
    "HeadRefused",
    "parse_error_answer",
    "read_fields",
    "refusal",
]

# Longer than the 60 s idle timeout of common load balancers in front (AWS ALB, ingress-nginx), so they
# close an idle connection before we do; far longer than any real client needs to send a head.
HEAD_TIMEOUT = 75.0
MAX_LINE_SIZE = 8190  # the request target
# One header line: room for a bearer header or cookie holding the largest token the verifier reads.
MAX_FIELD_SIZE = MAX_TOKEN_LENGTH + 1024
MAX_HEADERS = 128
# A head still incomplete past this many bytes cannot fit the limits above: refused without waiting for the
# field that breaks them to end (llhttp holds a field's bytes until it ends).
MAX_HEAD = MAX_LINE_SIZE + MAX_HEADERS * (MAX_FIELD_SIZE + 2)

# Field names as they go upstream: a name aiohttp knows (hdrs) in its registered spelling, as aiohttp's own
# parser gives it (so `aUTHORIZATION` leaves as `Authorization`), any other as sent. Names are tokens (ASCII).
_SPELLING = {str(v).lower(): str(v) for v in vars(hdrs).values() if isinstance(v, istr)}
_VERSIONS = {"1.1": (1, 1), "1.0": (1, 0)}
# Fields a request may carry once (two Hosts pick two virtual hosts, two Content-Lengths two bodies): the set
# aiohttp's parser refuses repeated, taken from it, so the proxied port and the decision port refuse alike.
_SINGLETONS = frozenset(name.encode() for name in SINGLETON_HEADERS)
_names: dict[bytes, str] = {}  # raw name -> what goes upstream; bounded, emptied when full
_NAMES_MAX = 512


class HeadRefused(Exception):
    """A limit of ours, raised from a parser callback; llhttp reports it as a callback error."""

    def __init__(self, answer: OwnAnswer) -> None:
        super().__init__(answer.detail)
        self.answer = answer


def parse_error_answer(error: BaseException) -> OwnAnswer:
    """Our answer to a head llhttp (or one of our limits) refused."""
    if isinstance(error, httptools.HttpParserCallbackError) and isinstance(error.__context__, HeadRefused):
        return error.__context__.answer
    if isinstance(error, httptools.HttpParserInvalidMethodError):
        return OwnAnswer.BAD_METHOD
    if isinstance(error, httptools.HttpParserInvalidURLError):
        return OwnAnswer.BAD_REQUEST_TARGET
    return OwnAnswer.MALFORMED_REQUEST


def _field_name(raw: bytes) -> str:
    name = _names.get(raw)
    if name is None:
        text = raw.decode("latin-1")
        name = _SPELLING.get(text.lower(), text)
        if len(_names) >= _NAMES_MAX:
            _names.clear()
        _names[raw] = name
    return name


def read_fields(
    version_text: str, fields: list[tuple[bytes, bytes]]
) -> tuple[tuple[int, int], CIMultiDict[str], bool]:
    """(version, headers, chunked) of a whole head; HeadRefused when it is not one we forward."""
    version = _VERSIONS.get(version_text)
    if version is None:  # llhttp reads any digit pair: HTTP/2.0 in an HTTP/1 request line is not one of ours
        raise HeadRefused(OwnAnswer.MALFORMED_REQUEST)
    # Trailing whitespace is not part of a value (RFC 9110 §5.5); llhttp drops only the leading.
    headers: CIMultiDict[str] = CIMultiDict(
        [(_field_name(n), v.rstrip(b" \t").decode("utf-8", "surrogateescape")) for n, v in fields]
    )
    if _repeats_a_singleton(n for n, _ in fields):
        raise HeadRefused(OwnAnswer.MALFORMED_REQUEST)
    if "Host" not in headers and version != (1, 0):
        raise HeadRefused(OwnAnswer.MALFORMED_REQUEST)  # RFC 9112 §3.2: an HTTP/1.1 request names its host
    coding = headers.get("Transfer-Encoding")  # one at most (_SINGLETONS)
    if coding is not None and version == (1, 0):
        # RFC 9112 §6.1: HTTP/1.0 has no transfer codings; such a message's framing is faulty.
        raise HeadRefused(OwnAnswer.MALFORMED_REQUEST)
    if coding is not None and [t.strip().lower() for t in coding.split(",")] != ["chunked"]:
        # RFC 9112 §6.3: a request whose final coding is not chunked cannot be framed; and chunked is the
        # only coding we read, so anything else is a body the upstream might frame otherwise.
        raise HeadRefused(OwnAnswer.MALFORMED_REQUEST)
    return version, headers, coding is not None


def _repeats_a_singleton(names: Iterable[bytes]) -> bool:
    seen: set[bytes] = set()
    for name in names:
        lowered = name.lower()
        if lowered in _SINGLETONS:
            if lowered in seen:
                return True
            seen.add(lowered)
    return False


def refusal(answer: OwnAnswer) -> bytes:
    """The whole answer to a refused head: ours, and the connection closes after it."""
    rendered = render_answer(answer)
    head = (
        f"HTTP/1.1 {rendered.status} {reason_phrase(rendered.status)}\r\n"
        + "".join(f"{n}: {v}\r\n" for n, v in rendered.headers)
        + f"Content-Length: {len(rendered.body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + rendered.body
