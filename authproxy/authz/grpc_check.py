"""Envoy's gRPC `envoy.service.auth.v3.Authorization/Check` (Istio's `envoyExtAuthzGrpc`), on grpc_listen.

The messages are envoy-data-plane's generated ones, served by grpclib on the same event loop as the other
ports (the `grpc` extra: `pip install 'authproxy[grpc]'`). The original method, path (with its query) and
headers arrive as fields of the CheckRequest; the answer is the HTTP decision port's, as gRPC fields: the
identity headers and the headers to remove on an allow, the status, JSON body and challenge on a denial.
"""

from __future__ import annotations

import asyncio
import socket
import warnings
from functools import partial

from grpclib.server import Server
from multidict import CIMultiDict

from authproxy.answers.table import OwnAnswer, Rendered, render_answer
from authproxy.authz.answer import CheckAnswer
from authproxy.authz.decide import Decider
from authproxy.config.model import Address
from authproxy.proxy.frontend import AccessRecord
from authproxy.runtime import Runtime

with warnings.catch_warnings():
    # envoy-data-plane 2.2's generated validators use a form pydantic 2.12 deprecates: harmless, and not ours
    warnings.simplefilter("ignore", DeprecationWarning)
    from envoy_data_plane.envoy.config.core.v3 import HeaderValue, HeaderValueOption
    from envoy_data_plane.envoy.service.auth.v3 import (
        AttributeContextHttpRequest,
        AuthorizationBase,
        CheckRequest,
        CheckResponse,
        DeniedHttpResponse,
        OkHttpResponse,
    )
    from envoy_data_plane.envoy.type.v3 import HttpStatus, StatusCode
    from envoy_data_plane.google.rpc import Status


__all__ = ["CheckService", "GrpcCheckListener"]

FRONTEND = "envoy_grpc"
# google.rpc.Code: a denial must not be OK; Envoy answers the client from denied_response either way.
_RPC_CODE = {200: 0, 400: 3, 401: 16, 403: 7}  # OK, INVALID_ARGUMENT, UNAUTHENTICATED, PERMISSION_DENIED
_RPC_INTERNAL = 13


class CheckService(AuthorizationBase):
    def __init__(self, decider: Decider) -> None:
        self._decider = decider

    async def check(self, message: CheckRequest) -> CheckResponse:
        http = _http_of(message)
        record = AccessRecord(
            http.method if http else "", (http.path if http else "").partition("?")[0], authz=FRONTEND
        )
        return await self._decider.frontend.serve(
            record, partial(self._check, http, message, record), partial(_failed, record)
        )

    async def _check(
        self,
        http: AttributeContextHttpRequest | None,
        message: CheckRequest,
        record: AccessRecord,
        rt: Runtime,
    ) -> CheckResponse:
        if http is None:
            refusal = render_answer(OwnAnswer.CHECK_WITHOUT_REQUEST)
            record.status = refusal.status
            return _denied(refusal)
        answer = await self._decider.decide(
            rt, record, http.method, http.path, _headers_of(http), peer=_source_of(message)
        )
        return _response(answer)


def _failed(record: AccessRecord) -> CheckResponse:
    """A bug's answer: a 500 denial, and INTERNAL as the RPC's code."""
    rendered = render_answer(OwnAnswer.INTERNAL_ERROR)
    record.status = rendered.status
    return _denied(rendered, _RPC_INTERNAL)


def _http_of(message: CheckRequest) -> AttributeContextHttpRequest | None:
    request = message.attributes.request if message.attributes is not None else None
    return request.http if request is not None else None


def _source_of(message: CheckRequest) -> str | None:
    """The downstream peer's IP as Envoy saw it (`attributes.source.address`), or None (a Unix socket)."""
    source = message.attributes.source if message.attributes is not None else None
    address = source.address if source is not None else None
    socket_address = address.socket_address if address is not None else None
    return socket_address.address if socket_address is not None else None


def _headers_of(http: AttributeContextHttpRequest) -> CIMultiDict[str]:
    if http.header_map is not None and http.header_map.headers:  # Envoy's encode_raw_headers
        return CIMultiDict((h.key, h.raw_value.decode("utf-8", "replace")) for h in http.header_map.headers)
    return CIMultiDict(http.headers)


def _options(headers: tuple[tuple[str, str], ...]) -> list[HeaderValueOption]:
    return [HeaderValueOption(header=HeaderValue(key=name, value=value)) for name, value in headers]


def _response(answer: CheckAnswer) -> CheckResponse:
    rendered = answer.rendered
    if rendered.status != 200:
        return _denied(rendered)
    ok = OkHttpResponse(
        headers=_options(rendered.headers),
        headers_to_remove=list(answer.remove),
        response_headers_to_add=_options(answer.client_headers),
    )
    return CheckResponse(status=Status(code=0), ok_response=ok)


def _denied(rendered: Rendered, code: int | None = None) -> CheckResponse:
    denied = DeniedHttpResponse(
        status=HttpStatus(code=StatusCode(rendered.status)),
        headers=_options(rendered.headers),
        body=rendered.body.decode(),
    )
    rpc = _RPC_CODE.get(rendered.status, _RPC_CODE[403]) if code is None else code
    return CheckResponse(status=Status(code=rpc), denied_response=denied)


class GrpcCheckListener:
    """The gRPC port: `start()` binds (OSError when it cannot), `stop()` closes."""

    def __init__(self, decider: Decider) -> None:
        self._server = Server([CheckService(decider)])
        self.address: tuple[str, int] = ("", 0)

    async def start(self, listen: Address, *, reuse_port: bool = False) -> None:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(
            listen.host, listen.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, kind, proto, _, sockaddr = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(sockaddr)
        except OSError:
            sock.close()
            raise
        host, port = sock.getsockname()[:2]
        await self._server.start(sock=sock)
        self.address = (str(host), int(port))

    async def stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()
