"""The admin application: `/healthz` (the process is alive), `/readyz` (keys loaded, not draining; it says
when the policy runs in dry run or beside a shadow), and the routes other parts plug in (/metrics). Served
on its own port, never on the proxied one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web

from authproxy.answers.table import stamp_server
from authproxy.runtime import Runtime, RuntimeHolder

__all__ = ["ServiceState", "build_admin_app", "trying"]


@dataclass(slots=True)
class ServiceState:
    """Lifecycle facts the admin port reports: set to draining when shutdown starts."""

    draining: bool = False


HOLDER = web.AppKey("holder", RuntimeHolder)
STATE = web.AppKey("state", ServiceState)


async def _healthz(request: web.Request) -> web.Response:
    del request
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    if request.app[STATE].draining:
        return web.json_response({"status": "draining"}, status=503)
    runtime = request.app[HOLDER].current
    if not runtime.keys.ready:
        waiting = sorted({getattr(s, "url", "?") for _, s in runtime.remotes if not s.ready})
        return web.json_response({"status": "keys_not_ready", "waiting_for": waiting}, status=503)
    return web.json_response({"status": "ready", **trying(runtime)})


def trying(runtime: Runtime) -> dict[str, object]:
    """What /readyz says of a policy being tried: in dry run nothing is refused, which must not go unseen."""
    policy = runtime.config.policy
    out: dict[str, object] = {}
    if policy.dry_run:
        out["dry_run"] = True
    if policy.shadow is not None:
        out["shadow"] = policy.shadow.file
    return out


def build_admin_app(
    holder: RuntimeHolder, state: ServiceState, admin_routes: Iterable[web.AbstractRouteDef] = ()
) -> web.Application:
    """`/healthz`, `/readyz`, plus `admin_routes` (the extension point /metrics plugs into)."""
    app = web.Application()
    app.on_response_prepare.append(stamp_server)  # no aiohttp version banner on the admin port either
    app[HOLDER] = holder
    app[STATE] = state
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_routes(admin_routes)
    return app
