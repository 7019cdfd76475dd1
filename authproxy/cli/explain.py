"""`authproxy explain`: the proxy's own decision for one request, every check after it that can run without
the upstream (cli/offline.py), and the answer the proxy would give, byte for byte."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from multidict import CIMultiDict

from authproxy.cli.offline import Explained, Request, after_the_gate
from authproxy.cli.shadow import shadow_config
from authproxy.gate import authorize
from authproxy.runtime import Runtime, build_runtime, load_runtime

__all__ = ["explain", "explanation", "explanations", "request_headers"]

_KEYS_READY_TIMEOUT = 10.0


async def _wait_for_keys(runtime: Runtime) -> None:
    await runtime.keys.start()
    await runtime.keys.wait_ready(_KEYS_READY_TIMEOUT)  # if not ready, the decision says why (no key)


def request_headers(runtime: Runtime, token: str | None, extra: Sequence[str]) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict()
    for item in extra:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise SystemExit(f"authproxy explain: --header takes NAME:VALUE, got {item!r}")
        headers.add(name.strip(), value.strip())
    if token is not None:
        jwt = runtime.config.jwt
        if "header" in jwt.sources:
            headers.add(jwt.header, f"Bearer {token}")
        else:
            headers.add("Cookie", f"{jwt.cookie}={token}")
    return headers


async def explanation(
    config_path: str,
    method: str,
    target: str,
    *,
    token: str | None,
    headers: Sequence[str] = (),
    body: bytes | None = None,
) -> Explained:
    """The request decided as the proxied port decides it, every check it runs before the upstream."""
    explained, _ = await explanations(config_path, method, target, token=token, headers=headers, body=body)
    return explained


async def explanations(
    config_path: str,
    method: str,
    target: str,
    *,
    token: str | None,
    headers: Sequence[str] = (),
    body: bytes | None = None,
    shadow: str | None = None,
) -> tuple[Explained, Explained | None]:
    """The request decided as the proxied port decides it, every check it runs before the upstream; and
    with `shadow` (a policy file), the same request decided by that policy instead."""
    runtime = await asyncio.to_thread(load_runtime, config_path)  # file reads stay off the event loop
    other = None
    if shadow is not None:
        shadowed = await asyncio.to_thread(shadow_config, runtime.config, shadow)
        other = build_runtime(shadowed, reuse=runtime)  # the same key sources
    await _wait_for_keys(runtime)
    try:
        sent = Request(method, target, request_headers(runtime, token, headers), body)
        decision = await authorize(runtime, method, target, sent.headers)
        theirs = None
        if other is not None:
            theirs = after_the_gate(other, await authorize(other, method, target, sent.headers), sent)
    finally:
        await runtime.keys.close()
    return after_the_gate(runtime, decision, sent), theirs


async def explain(
    config_path: str,
    method: str,
    target: str,
    *,
    token: str | None,
    headers: Sequence[str] = (),
    body: bytes | None = None,
) -> tuple[dict[str, str], bool]:
    """The text report's fields (ordered) and whether the request is allowed."""
    explained = await explanation(config_path, method, target, token=token, headers=headers, body=body)
    return explained.report(), explained.decision.allowed
