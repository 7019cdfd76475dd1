"""A real identity provider stand-in on 127.0.0.1 that a test steers: which JWKS it serves, how it fails,
and how many requests it saw. Started and torn down by `running_jwks_server()`. Also the helpers that
drive a JwksSource deterministically (a fake clock, joined fetches)."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import socket
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import aiohttp
import jwt
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from authproxy.auth.jwks import JwksSource

JWKS_PATH = "/jwks.json"
DISCOVERY_PATH = "/.well-known/openid-configuration"
REDIRECT_PATH = "/moved"

Mode = Literal["ok", "error", "garbage", "hang", "huge", "huge-chunked"]


def rsa_jwk(key: rsa.RSAPrivateKey, kid: str, **extra: Any) -> dict[str, Any]:
    """The public JWK of `key` as an IdP publishes it."""
    jwk: dict[str, Any] = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update(kid=kid, use="sig", alg="RS256", **extra)
    return jwk


def loopback_tls(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for 127.0.0.1: (server context, client context trusting only it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (directory / "cert.pem").write_bytes(cert_pem)
    (directory / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    client = ssl.create_default_context(cadata=cert_pem.decode())
    return server, client


class LoopbackResolver(AbstractResolver):
    """Resolves every name to 127.0.0.1, so a test can name a remote-looking host (idp.example.com)
    and a fetch that wrongly went ahead would reach this server instead of the internet."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host="127.0.0.1", port=port, family=socket.AF_INET, proto=0, flags=0)
        ]

    async def close(self) -> None:
        return None


def loopback_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=LoopbackResolver()))


class JwksServer:
    """State the handlers read on every request; tests change it between fetches."""

    def __init__(self) -> None:
        self.base_url = ""  # set once listening
        self.keys: list[dict[str, Any]] = []
        self.document: Any = None  # when set, served as the JWKS body instead of {"keys": keys}
        self.mode: Mode = "ok"
        self.status = 500
        self.cache_control: str | None = None
        self.discovery: dict[str, Any] | None = None  # None: a correct document for this server
        self.redirect_location = ""
        self.hits: Counter[str] = Counter()
        self.release = asyncio.Event()  # "hang" handlers wait on it; set at teardown
        self._seen = asyncio.Condition()

    @property
    def jwks_url(self) -> str:
        return self.base_url + JWKS_PATH

    @property
    def issuer(self) -> str:
        return self.base_url

    def remote_url(self, path: str, scheme: str = "http") -> str:
        """This server under a non-loopback name; reachable only through loopback_session()."""
        return f"{scheme}://idp.example.com:{self.base_url.rsplit(':', 1)[1]}{path}"

    def serve(self, *keys: Mapping[str, Any]) -> None:
        self.keys = [dict(k) for k in keys]
        self.document = None
        self.mode = "ok"

    async def wait_hits(self, path: str, count: int) -> None:
        """Return once `path` was requested `count` times (the test's condition, not a sleep)."""
        async with asyncio.timeout(10), self._seen:
            await self._seen.wait_for(lambda: self.hits[path] >= count)

    async def _count(self, request: web.Request) -> None:
        async with self._seen:
            self.hits[request.path] += 1
            self._seen.notify_all()

    async def jwks(self, request: web.Request) -> web.StreamResponse:
        await self._count(request)
        if self.mode == "hang":
            await self.release.wait()
        if self.mode == "error":  # a well-formed key set, so only the status can refuse it
            return web.json_response({"keys": self.keys}, status=self.status)
        if self.mode == "garbage":
            return web.Response(body=b"<html>not json{", content_type="application/json")
        if self.mode == "huge":  # valid JSON, so only the size cap can refuse it
            padded = {"keys": self.keys, "padding": "x" * (2 * 1024 * 1024)}
            return web.json_response(padded)
        if self.mode == "huge-chunked":
            return await self._endless(request)
        headers = {"Cache-Control": self.cache_control} if self.cache_control else None
        document = {"keys": self.keys} if self.document is None else self.document
        return web.json_response(document, headers=headers)

    async def _endless(self, request: web.Request) -> web.StreamResponse:
        # No Content-Length: only a cap on the bytes actually read can stop this one.
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            await response.write(b'{"keys": ' + json.dumps(self.keys).encode() + b', "padding": "')
            for _ in range(64):
                await response.write(b"x" * 64 * 1024)
            await response.write(b'"}')
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client stopped reading at its cap, as it should
        return response

    async def openid_configuration(self, request: web.Request) -> web.Response:
        await self._count(request)
        document = self.discovery
        if document is None:
            document = {"issuer": self.issuer, "jwks_uri": self.jwks_url}
        return web.Response(text=json.dumps(document), content_type="application/json")

    async def moved(self, request: web.Request) -> web.Response:
        await self._count(request)
        raise web.HTTPFound(self.redirect_location)


@asynccontextmanager
async def running_jwks_server(tls: ssl.SSLContext | None = None) -> AsyncIterator[JwksServer]:
    server = JwksServer()
    app = web.Application()
    app.router.add_get(JWKS_PATH, server.jwks)
    app.router.add_get(DISCOVERY_PATH, server.openid_configuration)
    app.router.add_get(REDIRECT_PATH, server.moved)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    host, port = runner.addresses[0][:2]
    server.base_url = f"{'https' if tls else 'http'}://{host}:{port}"
    try:
        yield server
    finally:
        server.release.set()
        await runner.cleanup()


# --- driving a JwksSource deterministically --------------------------------------------------------------

RS256 = frozenset({"RS256"})
INTERVAL = 30.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


MakeSource = Callable[..., JwksSource]


async def loaded(source: JwksSource) -> JwksSource:
    """Start and complete the first fetch (joined, not waited for)."""
    await source.start()
    await source.refresh_for_unknown_kid(None)
    return source


async def refresh_now(source: JwksSource, clock: FakeClock, kid: str | None = None) -> bool:
    clock.advance(INTERVAL + 1)
    return await source.refresh_for_unknown_kid(kid)


def kids(source: JwksSource) -> set[str | None]:
    return {entry.kid for entry in source.entries}
