"""The HTTP/1.1 differential corpus: raw client bytes (tests/data/http1_corpus.yaml) sent to the proxied port
in front of the raw upstream, and what came of each: the answers the client read, whether the proxy closed
the connection, and the exact bytes the upstream received.

`python -m tests.rigs.http1_corpus --record` writes tests/data/http1_corpus.recorded.json from the current
tree; tests/security/test_http1_differential.py checks the current tree against that file.

Values that change from run to run are normalised in the forwarded bytes, nothing else: the token
(`{TOKEN}`), the upstream's authority (`{UPSTREAM}`) and the client address in `X-Forwarded-For` (`{PEER}`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.rigs.config import AUDIENCE, config_text
from tests.rigs.keys import mint_token, new_hs_secret
from tests.rigs.proxy import proxies
from tests.rigs.raw_answers import ClientSide, converse, request_methods
from tests.rigs.raw_upstream import RawUpstream, raw_upstream

DATA = Path(__file__).resolve().parent.parent / "data"
CORPUS = DATA / "http1_corpus.yaml"
RECORDED = DATA / "http1_corpus.recorded.json"

# The fixed policy: /public/** needs no token, /api/** the token's scope, /admin/** a scope it lacks (403);
# anything else is unmapped (401 without a token, 403 with one).
ROUTES = '    "* /api/**": [api:use]\n    "* /admin/**": [admin:root]\n'
CLAIMS = {"sub": "user-1", "aud": AUDIENCE, "scopes": ["api:use"], "session_id": "session-1"}

_PLACEHOLDER = re.compile(r"\{(TOKEN|PAD:(\d+)|HEADERS:(\d+))\}")
_PEER = re.compile(r"(?im)^(x-forwarded-for): [^\r\n]*")


@dataclass(frozen=True)
class Entry:
    name: str
    why: str
    parts: tuple[str, ...]  # written in turn; each after the first once an answer byte arrived
    # EOF after the last part: aiohttp drops a connection whose peer sent EOF (only where that is the point).
    half_close: bool
    may_differ: dict[str, str]  # recorded field -> why it may differ between runs or servers


def load_corpus(path: Path = CORPUS) -> list[Entry]:
    entries: list[Entry] = []
    for item in yaml.safe_load(path.read_text()):
        send = item["send"]
        parts = (send,) if isinstance(send, str) else tuple(send)
        entries.append(
            Entry(item["name"], item["why"], parts, item.get("half_close", False), item.get("may_differ", {}))
        )
    names = [e.name for e in entries]
    assert len(names) == len(set(names)), "corpus names must be unique"
    return entries


def expand(text: str, token: str) -> bytes:
    """The corpus text as bytes (each character one byte): `{TOKEN}` the run's token, `{PAD:n}` n letters,
    `{HEADERS:n}` n filler header lines."""

    def fill(match: re.Match[str]) -> str:
        if match[1] == "TOKEN":
            return token
        if match[2] is not None:
            return "a" * int(match[2])
        return "".join(f"X-Filler-{i}: v\r\n" for i in range(int(match[3])))

    return _PLACEHOLDER.sub(fill, text).encode("latin-1")


def normalise(data: bytes, *, token: str, upstream: str) -> str:
    text = data.decode("latin-1").replace(token, "{TOKEN}").replace(upstream, "{UPSTREAM}")
    return _PEER.sub(r"\1: {PEER}", text)


def outcome(client: ClientSide, forwarded: list[str], incomplete: list[str]) -> dict[str, Any]:
    """One entry's record: the fields the differential test compares."""
    return {
        "statuses": [a.status for a in client.answers],
        "errors": [a.error for a in client.answers],
        "details": [a.detail for a in client.answers],
        "closed": client.closed,
        "unparsed": client.unparsed.decode("latin-1"),
        "forwarded": forwarded,
        "forwarded_incomplete": incomplete,
    }


@dataclass
class CorpusRig:
    """The proxy of the current tree with the fixed config, in front of a RawUpstream."""

    port: int
    upstream: RawUpstream
    token: str

    async def run(self, entry: Entry) -> dict[str, Any]:
        arrivals = self.upstream.arrivals
        arrivals.clear()
        parts = [expand(p, self.token) for p in entry.parts]
        client = await converse(
            self.port, parts, half_close=entry.half_close, methods=request_methods(b"".join(parts))
        )
        norm = {"token": self.token, "upstream": self.upstream.authority}
        forwarded = [normalise(r, **norm) for r in arrivals.requests]
        incomplete = [normalise(r, **norm) for r in arrivals.incomplete()]
        return outcome(client, forwarded, incomplete)


@asynccontextmanager
async def corpus_rig(folder: Path, secret: bytes) -> AsyncIterator[CorpusRig]:
    async with raw_upstream() as up, proxies() as launch:
        path = folder / "http1-corpus.yaml"
        path.write_text(config_text(up.url, secret, routes=ROUTES))
        proxy = await launch(path, grace=1.0)
        yield CorpusRig(proxy.port, up, mint_token(CLAIMS, key=secret, ttl=3600))


def load_recorded(path: Path = RECORDED) -> dict[str, dict[str, Any]]:
    recorded: dict[str, dict[str, Any]] = json.loads(path.read_text())
    return recorded


async def record(entries: list[Entry], folder: Path) -> dict[str, dict[str, Any]]:
    """Every entry's record, in corpus order, from the proxy of the current tree."""
    async with corpus_rig(folder, new_hs_secret()) as rig:
        return {entry.name: await rig.run(entry) for entry in entries}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--record", action="store_true", help=f"write {RECORDED.name} from the current tree")
    args = parser.parse_args()
    if not args.record:
        parser.error("nothing to do: pass --record (the check is tests/security/test_http1_differential.py)")
    with tempfile.TemporaryDirectory() as folder:
        results = asyncio.run(record(load_corpus(), Path(folder)))
    RECORDED.write_text(json.dumps(results, indent=2, ensure_ascii=True) + "\n")
    print(f"recorded {len(results)} entries in {RECORDED}")


if __name__ == "__main__":
    main()
