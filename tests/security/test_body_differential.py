"""Property: whatever body a caller sends on a pinned route, either the proxy refuses it (400/403/413, not one
byte upstream) or EVERY real parser upstream (FastAPI/Starlette with python-multipart, aiohttp) reads the
pinned `user_id` once, as the caller's own id, and reads the other fields exactly as the proxy's own strict
reader (authproxy.standards) reads them.

Bodies are drawn well formed about half the time (so the allow path is exercised: a proxy that refused
everything fails the share check) and otherwise mutated where parsers disagree: bare CR/LF framing,
preambles and epilogues, the boundary inside data, repeated or extended names, header-name case,
Content-Transfer-Encoding, charsets (top-level, per part, `_charset_`), `;` separators, `%` escapes, `+`,
non-ASCII, byte-order marks, repeated keys, deep nesting.

Hypothesis runs in a worker thread (its examples are synchronous); each example's requests run on the
module's event loop, where the parser upstreams and the proxies live for the whole module.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote, quote_plus

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authproxy.standards.forms import read_urlencoded
from authproxy.standards.json_text import read_json
from authproxy.standards.media import Unreadable, check_charset, parse_media_type
from authproxy.standards.multipart import boundary_of, read_multipart
from tests.rigs.parsers import CALLER, OTHER, Guarded, Reading, send, token_for

pytestmark = pytest.mark.asyncio(loop_scope="module")

EXAMPLES = 60
MIN_ALLOWED_SHARE = 0.2  # of the examples run; well-formed bodies are drawn about half the time
REFUSALS = (400, 403, 413)
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
    report_multiple_bugs=False,  # one shrunk failure per test: shrinking each one costs round trips
)


@dataclass(frozen=True)
class Case:
    path: str
    content_type: str
    body: bytes


# --- what is drawn -------------------------------------------------------------------------------------

ABSENT = "<absent>"
TEXT = st.sampled_from(
    [CALLER, OTHER, "", "x", "caf\u00e9", "a b+c", "a&b=c;d", "%41", "\r\n", "+ACY-"]
) | st.text(max_size=6)
NAMES = st.sampled_from(["note", "message", "user_id", "User_id", "user_id ", "_charset_", "n\u00e9"])
SAFE_NAMES = st.sampled_from(["note", "message", "a"])
CHARSETS = ["; charset=utf-7", "; charset=utf-16", "; charset=latin-1", "; charset=utf-8; charset=utf-7"]
CLEAN_CHARSETS = ["", "; charset=utf-8", '; charset="UTF-8"']


Knobs = frozenset[str]  # what one example loosens; none for a well-formed body


def _knobs(draw: st.DrawFn, names: list[str]) -> Knobs:
    """Half the bodies are well formed; the rest loosen one or two things, so that each loosening is seen
    on its own often enough (loosening everything at once mostly tests the first refusal)."""
    if draw(st.booleans()):
        return frozenset()
    return frozenset(draw(st.lists(st.sampled_from(names), min_size=1, max_size=2)))


def _pick(draw: st.DrawFn, knobs: Knobs, knob: str, usual: list[Any], loose: list[Any]) -> Any:
    return draw(st.sampled_from(usual + loose if knob in knobs else usual))


def _own_id(draw: st.DrawFn, knobs: Knobs) -> Any:
    """The pinned field's value: absent or the caller's, or (loosened) anyone's."""
    return _pick(draw, knobs, "own id", [ABSENT, CALLER], [OTHER, "", f"{CALLER} ", None, 5])


@st.composite
def json_cases(draw: st.DrawFn) -> Case:
    knobs = _knobs(draw, ["own id", "names", "charset", "mutation"])
    numbers = st.integers(-(10**6), 10**6) | st.floats(allow_nan=False, allow_infinity=False)
    scalars = st.none() | st.booleans() | numbers | TEXT
    values = st.recursive(
        scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(SAFE_NAMES, c, max_size=3)
    )
    names = NAMES if "names" in knobs else SAFE_NAMES
    document: dict[str, Any] = draw(st.dictionaries(names, values, max_size=3))
    own = _own_id(draw, knobs)
    document.pop("user_id", None)
    if own != ABSENT:
        document["user_id"] = own
    separators = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " :\t")]))
    text = json.dumps(document, ensure_ascii=draw(st.booleans()), separators=separators)
    charset = _pick(draw, knobs, "charset", CLEAN_CHARSETS, CHARSETS)
    encoding = "utf-8"
    if "mutation" in knobs:
        text, encoding = JSON_MUTATIONS[draw(st.sampled_from(sorted(JSON_MUTATIONS)))](text, encoding)
    return Case("/json", "application/json" + charset, text.encode(encoding, "replace"))


def _inject(member: str) -> Callable[[str, str], tuple[str, str]]:
    return lambda text, encoding: (text.replace("{", "{" + member + ",", 1), encoding)


JSON_MUTATIONS: dict[str, Callable[[str, str], tuple[str, str]]] = {
    "repeated key": _inject(f'"user_id":"{OTHER}"'),
    "escaped key": lambda t, e: (t.replace('"user_id"', '"\\u0075ser_id"'), e),
    "byte-order mark": lambda t, e: ("\ufeff" + t, e),
    "NaN": _inject('"n":NaN'),
    "overflow to infinity": _inject('"n":1e999'),
    "deep": _inject('"deep":' + "[" * 70 + "]" * 70),
    "UTF-16": lambda t, e: (t, "utf-16"),
    "latin-1": lambda t, e: (t.replace("{", '{"note2":"caf\u00e9",', 1), "latin-1"),
    "trailing data": lambda t, e: (t + " x", e),
    "top-level array": lambda t, e: (f"[{t}]", e),
    "lone surrogate": _inject('"s":"\\ud800"'),
}


def _encode_pair(name: str, value: str, how: str) -> str:
    if how == "plus":
        return f"{quote_plus(name)}={quote_plus(value)}"
    if how == "percent":
        return f"{quote(name, safe='')}={quote(value, safe='')}"
    if how == "lower-case escapes":
        return f"{quote(name, safe='')}={quote(value, safe='')}".lower()
    return f"{name}={value}"  # raw: separators, `+`, `%` and non-ASCII as they are


@st.composite
def urlencoded_cases(draw: st.DrawFn) -> Case:
    knobs = _knobs(draw, ["own id", "names", "escapes", "separator", "suffix", "prefix", "charset"])
    pairs = draw(st.lists(st.tuples(NAMES if "names" in knobs else SAFE_NAMES, TEXT), max_size=3))
    own = _own_id(draw, knobs)
    if own != ABSENT:
        pairs.insert(draw(st.integers(0, len(pairs))), ("user_id", str(own)))
    hows = ["plus", "percent"] + (["lower-case escapes", "raw"] if "escapes" in knobs else [])
    encoded = [_encode_pair(n, v, draw(st.sampled_from(hows))) for n, v in pairs]
    text = _pick(draw, knobs, "separator", ["&"], [";", "&&"]).join(encoded)
    text += _pick(
        draw, knobs, "suffix", [""], ["&", "&%", "&x=%zz", "&x=%C3", "&novalue", "&_charset_=utf-7"]
    )
    text = _pick(draw, knobs, "prefix", [""], ["\ufeff", "&"]) + text
    charset = _pick(draw, knobs, "charset", CLEAN_CHARSETS, CHARSETS)
    media = draw(st.sampled_from(["application/x-www-form-urlencoded", "Application/X-WWW-Form-URLEncoded"]))
    return Case("/form", media + charset, text.encode("utf-8"))


@dataclass(frozen=True)
class PartSpec:
    name: str
    value: bytes
    filename: str | None = None
    content_type: str | None = None
    encoding: str | None = None  # Content-Transfer-Encoding
    disposition_header: str = "Content-Disposition"
    extra: str = ""  # more Content-Disposition parameters
    quoted: bool = True

    def render(self, eol: bytes) -> bytes:
        name = f'"{self.name}"' if self.quoted else self.name
        disposition = f"form-data; name={name}" + self.extra
        if self.filename is not None:
            disposition += f'; filename="{self.filename}"'
        lines = [f"{self.disposition_header}: {disposition}"]
        lines += [f"Content-Type: {self.content_type}"] if self.content_type else []
        lines += [f"Content-Transfer-Encoding: {self.encoding}"] if self.encoding else []
        value = base64.b64encode(self.value) if self.encoding == "base64" else self.value
        return "".join(line + "\r\n" for line in lines).encode() + eol + value


PART_KNOBS = ["names", "filenames", "part types", "transfer encoding", "header case", "name params"]
MULTIPART_KNOBS = ["own id", "line ends", "preamble", "epilogue", "boundary params", *PART_KNOBS]


@st.composite
def part_specs(draw: st.DrawFn, knobs: Knobs, name: str | None = None) -> PartSpec:
    is_file = draw(st.booleans())
    loose_types = ["application/octet-stream", "text/plain; charset=utf-7", "multipart/mixed; boundary=C"]
    loose_headers = ["CONTENT-DISPOSITION", "Content-Disposition ", "Content-Disposition:"]
    return PartSpec(
        name=name if name is not None else draw(NAMES if "names" in knobs else SAFE_NAMES),
        value=draw(st.binary(max_size=12)) if is_file else draw(TEXT).encode(),
        filename=_pick(draw, knobs, "filenames", ["a.txt"], ["", "a\u00e9.txt", 'a";b']) if is_file else None,
        content_type=_pick(draw, knobs, "part types", [None, "text/plain; charset=utf-8"], loose_types),
        encoding=_pick(draw, knobs, "transfer encoding", [None], ["base64", "8bit"]),
        disposition_header=_pick(draw, knobs, "header case", ["Content-Disposition"], loose_headers),
        extra=_pick(draw, knobs, "name params", [""], ["; name*=UTF-8''user_id", '; name="user_id"']),
        quoted=_pick(draw, knobs, "name params", [True], [False]),
    )


@st.composite
def multipart_cases(draw: st.DrawFn) -> Case:
    knobs = _knobs(draw, MULTIPART_KNOBS)
    specs = draw(st.lists(part_specs(knobs), max_size=3))
    own = _own_id(draw, knobs)
    if own != ABSENT:
        spec = replace(draw(part_specs(knobs, name="user_id")), value=str(own).encode())
        specs.insert(
            draw(st.integers(0, len(specs))), spec if "filenames" in knobs else replace(spec, filename=None)
        )
    boundary = draw(st.sampled_from(["B", "----WebKitFormBoundary7MA4YWxkTrZu0gW", "a'()+_,-./:=?b"]))
    eol = _pick(draw, knobs, "line ends", [b"\r\n"], [b"\n", b"\r"])
    dash = b"--" + boundary.encode()
    body = b"".join(dash + eol + s.render(eol) + eol for s in specs) + dash + b"--" + eol
    body = _pick(draw, knobs, "preamble", [b""], [b"preamble\r\n", b"\r\n"]) + body
    body += _pick(draw, knobs, "epilogue", [b""], [b"epilogue", dash + b"--\r\n"])
    params = f'; boundary="{boundary}"' if draw(st.booleans()) else f"; boundary={boundary}"
    loose_params = ["; charset=utf-7", "; Boundary=X", "; boundary*=UTF-8''X", ",x"]
    params += _pick(draw, knobs, "boundary params", ["", "; charset=utf-8"], loose_params)
    return Case("/form", "multipart/form-data" + params, body)


# --- what the proxy's own strict reader implies ------------------------------------------------------------

Expected = list[tuple[str, Any]]  # a text value as str, a file as ("file", sha256)


def json_oracle(case: Case) -> Any:
    check_charset(parse_media_type(case.content_type))
    document = read_json(case.body)
    assert isinstance(document, dict), f"allowed a JSON body that is no object: {document!r}"
    assert document.get("user_id") in (None, CALLER), f"allowed user_id {document.get('user_id')!r}"
    return {**document, "user_id": CALLER}


def form_oracle(case: Case) -> Expected:
    media = parse_media_type(case.content_type)
    check_charset(media)
    if media.essence == "multipart/form-data":
        parts = read_multipart(case.body, boundary_of(media))
        pairs: Expected = [
            (p.name, p.text if p.filename is None else ("file", hashlib.sha256(p.data).hexdigest()))
            for p in parts
        ]
    else:
        pairs = list(read_urlencoded(case.body))
    given_ids = [v for n, v in pairs if n == "user_id"]
    assert given_ids in ([], [CALLER]), f"allowed a body naming user_id as {given_ids}"
    return pairs if given_ids else [*pairs, ("user_id", CALLER)]


def check_reading(reading: Reading, expected: Any) -> None:
    if isinstance(expected, dict):
        assert reading.json == expected, f"{reading.parser} read {reading.json!r}, the proxy {expected!r}"
        return
    seen = [(n, v if isinstance(v, str) else ("file", v["sha256"])) for n, v in reading.fields]
    assert [v for n, v in seen if n == "user_id"] == [CALLER], f"{reading.parser} read {seen}"
    assert len(seen) == len(expected), f"{reading.parser} read {seen}, the proxy {expected}"
    assert Counter(seen) == Counter(expected), f"{reading.parser} read {seen}, the proxy {expected}"


# --- running it -------------------------------------------------------------------------------------------


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)

    def assert_allow_path_exercised(self) -> None:
        total = sum(self.statuses.values())
        assert total >= EXAMPLES // 2, f"only {total} examples ran"
        assert self.statuses[200] >= MIN_ALLOWED_SHARE * total, f"too few allowed: {dict(self.statuses)}"


@dataclass
class Differential:
    guarded: dict[str, Guarded]
    http: aiohttp.ClientSession
    token: str
    oracle: Callable[[Case], Any]
    tally: Tally = field(default_factory=Tally)

    async def judge(self, case: Case) -> None:
        """One body through both proxies: refused with nothing forwarded, or read alike everywhere."""
        statuses = set()
        for via in self.guarded.values():
            via.upstream.reset()
            answer = await send(self.http, via.proxy + case.path, case.body, case.content_type, self.token)
            statuses.add(answer.status)
            if answer.status in REFUSALS:
                via.upstream.assert_nothing_forwarded()
                continue
            assert answer.status == 200, f"{via.upstream.name}: {answer.status} {answer.body}"
            reading = answer.reading()
            assert reading.error is None, f"forwarded what {reading.parser} cannot parse: {reading.error}"
            try:
                expected = self.oracle(case)
            except Unreadable as error:
                pytest.fail(f"allowed a body the strict reader refuses ({error.reason})")
            check_reading(reading, expected)
        assert len(statuses) == 1, f"one request, decided two ways: {statuses}"
        self.tally.statuses[statuses.pop()] += 1

    async def run(self, cases: st.SearchStrategy[Case]) -> None:
        loop = asyncio.get_running_loop()

        @SETTINGS
        @given(case=cases)
        def each(case: Case) -> None:
            asyncio.run_coroutine_threadsafe(self.judge(case), loop).result(timeout=60)

        await asyncio.to_thread(each)
        self.tally.assert_allow_path_exercised()


async def test_json_bodies_are_refused_or_read_alike(
    guarded: dict[str, Guarded], module_http: aiohttp.ClientSession, hs_secret: bytes
) -> None:
    token = token_for(hs_secret, "items:write")
    await Differential(guarded, module_http, token, json_oracle).run(json_cases())


async def test_urlencoded_bodies_are_refused_or_read_alike(
    guarded: dict[str, Guarded], module_http: aiohttp.ClientSession, hs_secret: bytes
) -> None:
    token = token_for(hs_secret, "items:write")
    await Differential(guarded, module_http, token, form_oracle).run(urlencoded_cases())


async def test_multipart_bodies_are_refused_or_read_alike(
    guarded: dict[str, Guarded], module_http: aiohttp.ClientSession, hs_secret: bytes
) -> None:
    token = token_for(hs_secret, "items:write")
    await Differential(guarded, module_http, token, form_oracle).run(multipart_cases())
