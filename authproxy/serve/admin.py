"""The admin application: `/healthz` (the process is alive), `/readyz` (keys loaded, not draining), and the
routes other parts plug in (/metrics). Served on its own port, never on the proxied one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web

from authproxy.answers.table import stamp_server
from authproxy.runtime import RuntimeHolder

__all__ = ["ServiceState", "build_admin_app"]


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
    return web.json_response({"status": "ready"})


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
