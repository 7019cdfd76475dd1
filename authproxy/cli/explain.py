"""`authproxy explain`: run the proxy's own decision for one request and report it, response body included."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from multidict import CIMultiDict

from authproxy.gate import authorize
from authproxy.policy.decision import Decision
from authproxy.proxy.mcp.discovery import metadata_url, with_resource_metadata
from authproxy.proxy.responses import render_decision
from authproxy.runtime import Runtime, load_runtime

__all__ = ["explain"]

_KEYS_READY_TIMEOUT = 10.0


async def _wait_for_keys(runtime: Runtime) -> None:
    await runtime.keys.start()
    await runtime.keys.wait_ready(_KEYS_READY_TIMEOUT)  # if not ready, the decision says why (no key)


def _request_headers(runtime: Runtime, token: str | None, extra: Sequence[str]) -> CIMultiDict[str]:
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


def _forwarded(decision: Decision) -> str:
    return "forwarded to upstream" + (" after its content checks" if decision.content is not None else "")


async def explain(
    config_path: str, method: str, target: str, *, token: str | None, headers: Sequence[str] = ()
) -> tuple[dict[str, str], bool]:
    """The decision report (ordered fields) and whether the request would be forwarded."""
    runtime = await asyncio.to_thread(load_runtime, config_path)  # file reads stay off the event loop
    await _wait_for_keys(runtime)
    try:
        decision = await authorize(runtime, method, target, _request_headers(runtime, token, headers))
    finally:
        await runtime.keys.close()
    report: dict[str, str] = {
        "decision": "allow" if decision.allowed else "deny",
        "status": _forwarded(decision) if decision.allowed else "",
        "route": decision.route or ("(none)" if not decision.public else ""),
        "required scopes": " ".join(decision.required_scopes) or "(none)",
        "missing scopes": " ".join(decision.missing_scopes) or "(none)",
        "subject": decision.subject or "(none)",
        "reason": decision.reason,
    }
    report.update(_after_the_gate(runtime, target, decision))
    if not decision.allowed:
        report.update(_denial(runtime, target, decision))
    return report, decision.allowed


def _after_the_gate(runtime: Runtime, target: str, decision: Decision) -> dict[str, str]:
    """What the proxy does with an allow beyond forwarding it: the checks the decision carries."""
    report: dict[str, str] = {}
    if decision.allowed and runtime.mcp is not None and runtime.mcp.site_for(target) is not None:
        report["mcp"] = "each JSON-RPC message is then checked against the endpoint's tool rules"
    if decision.listing is not None:
        ids = " ".join(sorted(decision.listing.ids))
        report["listing filter"] = f"{decision.listing.family} limited to: {ids or '(nothing)'}"
    if decision.rate_limit is not None:
        report["rate limits"] = decision.rate_limit.describe()
    if decision.content is not None:
        report["content checks"] = decision.content.describe()
    if decision.roster is not None:
        report["config filter"] = decision.roster.describe()
    if decision.messages is not None:
        report["message check"] = decision.messages.describe()
    return report


def _denial(runtime: Runtime, target: str, decision: Decision) -> dict[str, str]:
    """The denial's exact answer, rendered as the proxy renders it."""
    rendered = render_decision(decision, preset=runtime.config.policy.preset)
    site = runtime.mcp.site_for(target) if runtime.mcp is not None else None
    if runtime.mcp is not None and site is not None:  # as the proxy challenges on an MCP endpoint
        rendered = with_resource_metadata(rendered, metadata_url(runtime.mcp, site, None))
    report = {"status": str(rendered.status), "error": decision.error or ""}
    for name, value in rendered.headers:
        if name == "WWW-Authenticate":
            report["www-authenticate"] = value
    report["body"] = rendered.body.decode()
    return report
