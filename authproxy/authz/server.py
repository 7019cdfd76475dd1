"""The decision port (HTTP): each check request goes through the gate and is answered; nothing is ever
forwarded. Which request a check asks about is read per front end (original.py); the rest is decide.py's.
"""

from __future__ import annotations

import asyncio
import importlib
import ssl
from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING

from aiohttp import web
from multidict import CIMultiDict

from authproxy.answers.table import SERVER, OwnAnswer, Rendered, render_answer, render_decision
from authproxy.authz.answer import CheckAnswer
from authproxy.authz.decide import Decider
from authproxy.authz.original import BadCheck, Frontend, UnknownEndpoint, original_request
from authproxy.authz.protocol import CheckServer
from authproxy.config.model import AuthzConfig
from authproxy.errors import DenialCode
from authproxy.policy.decision import Decision
from authproxy.proxy.frontend import AccessRecord, Observer
from authproxy.proxy.protocol import HEAD_TIMEOUT
from authproxy.runtime import Runtime, RuntimeHolder
from authproxy.tls import peer_subject

if TYPE_CHECKING:
    from authproxy.authz.grpc_check import GrpcCheckListener

__all__ = ["ENVOY_REMOVE", "DecisionHandler", "DecisionListener"]

# Envoy's ext_authz HTTP service removes the headers this response header names from the upstream request.
ENVOY_REMOVE = "x-envoy-auth-headers-to-remove"
_BACKLOG = 1024


class DecisionHandler:
    """`handle(request)`: one runtime snapshot, the original request, the gate, the answer."""

    def __init__(self, decider: Decider) -> None:
        self._decider = decider

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        record = AccessRecord(request.method, request.raw_path.partition("?")[0], authz="unknown")
        fail = partial(_internal_error, record)
        return await self._decider.frontend.serve(record, partial(self._check, request, record), fail)

    async def _check(self, request: web.BaseRequest, record: AccessRecord, rt: Runtime) -> web.StreamResponse:
        if rt.config.authz.tls is not None and rt.config.authz.tls.client_ca_file is not None:
            record.client_cert = peer_subject(request.get_extra_info("ssl_object"))
        try:
            original = original_request(request, rt.config.authz.path_prefix)
        except BadCheck as bad:
            return _respond(record, _refusal(bad))
        record.authz = original.frontend
        answer = await self._decider.decide(
            rt, record, original.method, original.target, request.headers, peer=request.remote
        )
        return _respond(record, _with_extras(answer, original.frontend))


def _with_extras(answer: CheckAnswer, frontend: Frontend | str) -> Rendered:
    """The rendered answer plus the RateLimit fields of an allow (a front end may pass them to the client:
    Envoy's allowed_client_headers_on_success, nginx's auth_request_set) and Envoy's removal list."""
    rendered = answer.rendered
    headers = (*rendered.headers, *answer.client_headers)
    if frontend == "envoy" and answer.remove:
        # Envoy copies our identity headers over the client's; the ones we leave out it must remove.
        headers = (*headers, (ENVOY_REMOVE, ",".join(answer.remove)))
    return Rendered(rendered.status, headers, rendered.body)


def _respond(record: AccessRecord, rendered: Rendered) -> web.Response:
    record.status = rendered.status
    headers = CIMultiDict(rendered.headers)
    # An allow renders only the headers a front end copies (to the upstream request, or the client's answer):
    # the wire answer names us here, over aiohttp's version banner, on allows and denials alike.
    headers["Server"] = SERVER
    return web.Response(status=rendered.status, headers=headers, body=rendered.body)


def _internal_error(record: AccessRecord) -> web.Response:
    return _respond(record, render_answer(OwnAnswer.INTERNAL_ERROR))


def _refusal(bad: BadCheck) -> Rendered:
    # Rendered as the gate renders a request it cannot read: the reason says which endpoints there are.
    code: DenialCode = "not_found" if isinstance(bad, UnknownEndpoint) else bad.code
    return render_decision(Decision(allowed=False, error=code, reason=bad.reason))


class DecisionListener:
    """The decision ports: HTTP on `authz_listen`, gRPC on `authz.grpc_listen`, whichever are configured.
    `start()` binds (OSError when it cannot), `stop()` drains and closes."""

    def __init__(
        self,
        holder: RuntimeHolder,
        observers: Iterable[Observer] = (),
        *,
        grace: float,
        head_timeout: float = HEAD_TIMEOUT,
    ) -> None:
        self._decider = Decider(holder, observers)
        self.handler = DecisionHandler(self._decider)
        server = CheckServer(
            self.handler, head_timeout=head_timeout, access_log=None, handler_cancellation=True
        )
        self._runner = web.ServerRunner(server, shutdown_timeout=grace)
        self._grpc: GrpcCheckListener | None = None
        self.address: tuple[str, int] | None = None
        self.grpc_address: tuple[str, int] | None = None

    async def start(
        self, authz: AuthzConfig, *, reuse_port: bool = False, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        """`ssl_context`: TLS on authz_listen (`authz.tls`), None for plain HTTP."""
        if authz.listen is not None:
            await self._runner.setup()
            listen = authz.listen
            site = web.TCPSite(
                self._runner,
                listen.host,
                listen.port,
                backlog=_BACKLOG,
                reuse_port=reuse_port,
                ssl_context=ssl_context,
            )
            await site.start()
            host, port = self._runner.addresses[0][:2]
            self.address = (str(host), int(port))
        if authz.grpc_listen is not None:
            # The `grpc` extra, imported only where configured (config/authz.py checked that it is installed),
            # and in a thread: loading Envoy's generated messages reads many files.
            grpc_check = await asyncio.to_thread(importlib.import_module, "authproxy.authz.grpc_check")
            listener: GrpcCheckListener = grpc_check.GrpcCheckListener(self._decider)
            self._grpc = listener
            await self._grpc.start(authz.grpc_listen, reuse_port=reuse_port)
            self.grpc_address = self._grpc.address

    async def stop(self) -> None:
        try:
            if self._grpc is not None:
                await self._grpc.stop()
        finally:
            await self._runner.cleanup()
