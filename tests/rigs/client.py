"""Plain requests through the proxy with aiohttp's client, the target sent as written (no re-quoting)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from tests.rigs.proxy import RunningProxy


@dataclass(frozen=True)
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def fetch(
    client: aiohttp.ClientSession,
    proxy: RunningProxy,
    target: str,
    *,
    method: str = "GET",
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One request through the proxy; `target` is sent as written (no re-quoting)."""
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    url = URL(proxy.url + target, encoded=True)
    async with client.request(method, url, headers=sent, allow_redirects=False) as response:
        return Reply(response.status, response.headers, await response.read())
