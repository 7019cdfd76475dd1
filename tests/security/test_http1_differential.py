"""The HTTP/1.1 differential: every raw request of tests/data/http1_corpus.yaml (valid, malformed, smuggling
attempts) must give what http1_corpus.recorded.json says it gave when recorded: the same answer statuses in
order, the same `error` and `detail` of our JSON answers, the same close of the connection, and the same
bytes upstream (the raw upstream keeps them exactly; only per-run values are normalised).

A change to the proxied port's HTTP/1 server that changes any of these fails here, entry by entry. Where the
change is meant, re-record (`python -m tests.rigs.http1_corpus --record`) and review the diff of the
recorded file. One proxy and one upstream serve the whole module.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.rigs.http1_corpus import CorpusRig, Entry, corpus_rig, load_corpus, load_recorded

ENTRIES = load_corpus()
RECORDED = load_recorded()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rig(hs_secret: bytes, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[CorpusRig]:
    async with corpus_rig(tmp_path_factory.mktemp("http1-corpus"), hs_secret) as running:
        yield running


def _compared(record: dict[str, Any], entry: Entry) -> dict[str, Any]:
    return {name: value for name, value in record.items() if name not in entry.may_differ}


def test_every_entry_is_recorded() -> None:
    assert [e.name for e in ENTRIES] == list(RECORDED), (
        "re-record: python -m tests.rigs.http1_corpus --record"
    )


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
async def test_answers_and_forwarded_bytes_match_the_record(rig: CorpusRig, entry: Entry) -> None:
    got = await rig.run(entry)
    assert _compared(got, entry) == _compared(RECORDED[entry.name], entry), entry.why
