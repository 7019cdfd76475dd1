"""`authproxy explain`: run the proxy's own decision for one request and report it, response body included."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from multidict import CIMultiDict

from authproxy.gate import authorize
from authproxy.policy.decision import Decision
from authproxy.policy.stages import McpMetadata
from authproxy.proxy.denials import render_denial
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
    if isinstance(decision.stage, McpMetadata):
        return "answered by the proxy"
    return "forwarded to upstream" + (
        f" after its {decision.stage.label}" if decision.stage is not None else ""
    )


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
    report.update(_after_the_gate(decision))
    if not decision.allowed:
        report.update(_denial(runtime, decision))
    return report, decision.allowed


def _after_the_gate(decision: Decision) -> dict[str, str]:
    """What the proxy does with an allow beyond forwarding it: its stage, and the limits that apply."""
    report: dict[str, str] = {}
    if decision.allowed and decision.stage is not None:
        report[decision.stage.label] = decision.stage.describe()
    if decision.rate_limit is not None:
        report["rate limits"] = decision.rate_limit.describe()
    return report


def _denial(runtime: Runtime, decision: Decision) -> dict[str, str]:
    """The denial's exact answer, rendered as the proxy renders it."""
    rendered = render_denial(runtime, decision, None)
    report = {"status": str(rendered.status), "error": decision.error or ""}
    for name, value in rendered.headers:
        if name == "WWW-Authenticate":
            report["www-authenticate"] = value
    report["body"] = rendered.body.decode()
    return report
