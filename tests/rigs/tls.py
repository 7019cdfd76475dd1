"""Parts of the TLS tests: a PKI generated per test (two CAs, server and client certificates, an expired
one), the proxy's config with `tls:` blocks, a recording upstream served over HTTPS, and client contexts.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from tests.rigs.certs import Issued, Pki
from tests.rigs.config import config_text
from tests.rigs.keys import TokenFactory
from tests.rigs.metrics import scrape, value
from tests.rigs.polling import poll
from tests.rigs.proxy import Launch
from tests.rigs.proxy import RunningProxy as OpsProxy
from tests.rigs.proxy import proxies as ops_launcher
from tests.rigs.upstream import RecordingUpstream


@dataclass
class TlsWorld:
    """What each TLS test starts from: a launcher of proxies that watch their files, a fresh PKI, the
    recording upstream, the proxy's HS256 secret, a bearer header allowed everywhere, and a client."""

    launch: Launch
    directory: Path
    upstream: RecordingUpstream
    secret: bytes
    pki: Pki
    bearer: dict[str, str]
    client: aiohttp.ClientSession
    configs: list[Path] = field(default_factory=list)

    def config(self, upstream_url: str | None = None) -> str:
        return config_text(upstream_url or self.upstream.url, self.secret)

    async def proxy(self, config: str, *, interval: float | None = None) -> OpsProxy:
        """A proxy started from `config`; with `interval`, it watches its files for changes."""
        path = self.directory / f"tls-{len(self.configs)}.yaml"
        self.configs.append(path)
        path.write_text(config)
        return await self.launch(path, interval=interval)

    async def counted(self, proxy: OpsProxy, metric: str) -> None:
        """Return once the proxy's counter `metric` is at least 1 (a reload done or refused)."""

        async def reached() -> bool:
            return value(await scrape(self.client, proxy.admin_url), metric) >= 1

        await poll(reached)


@asynccontextmanager
async def tls_world(
    directory: Path,
    upstream: RecordingUpstream,
    secret: bytes,
    token: TokenFactory,
    client: aiohttp.ClientSession,
) -> AsyncIterator[TlsWorld]:
    bearer = {"Authorization": f"Bearer {token('proxy:use', sub='alice')}"}
    async with ops_launcher() as launch:
        yield TlsWorld(launch, directory, upstream, secret, Pki.create(directory / "pki"), bearer, client)


def listener_tls_block(cert: Issued, *, client_ca: Path | None = None, client_auth: str | None = None) -> str:
    text = f"tls:\n  cert_file: {cert.cert_file}\n  key_file: {cert.key_file}\n"
    if client_ca is not None:
        text += f"  client_ca_file: {client_ca}\n"
    if client_auth is not None:
        text += f"  client_auth: {client_auth}\n"
    return text


def upstream_tls_block(
    *, ca: Path | None = None, server_name: str | None = None, client: Issued | None = None
) -> str:
    """Lines to insert under `upstream:` (two-space indented)."""
    text = "  tls:\n"
    if ca is not None:
        text += f"    ca_file: {ca}\n"
    if server_name is not None:
        text += f"    server_name: {server_name}\n"
    if client is not None:
        text += f"    cert_file: {client.cert_file}\n    key_file: {client.key_file}\n"
    return text


def with_upstream_tls(config: str, block: str) -> str:
    head, marker, rest = config.partition("upstream:\n")
    assert marker, "the config has no upstream section"
    return head + marker + block + rest


def client_context(trust: Path, cert: Issued | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(trust))
    if cert is not None:
        context.load_cert_chain(cert.cert_file, cert.key_file)
    return context


def https(url: str) -> str:
    return url.replace("http://", "https://", 1)


@asynccontextmanager
async def https_upstream(
    up: RecordingUpstream,
    cert: Issued,
    *,
    client_ca: Path | None = None,
    max_version: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED,
) -> AsyncIterator[RecordingUpstream]:
    """`up` served over TLS with `cert`; with `client_ca`, a client certificate from it is required."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.maximum_version = max_version
    context.load_cert_chain(cert.cert_file, cert.key_file)
    if client_ca is not None:
        context.load_verify_locations(cafile=str(client_ca))
        context.verify_mode = ssl.CERT_REQUIRED
    server = web.Server(up.handle, access_log=None, auto_decompress=False, handler_cancellation=True)
    runner = web.ServerRunner(server, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    host, port = runner.addresses[0][:2]
    up.url = f"https://{host}:{port}"
    try:
        yield up
    finally:
        up.sse_release.set()
        up.slow_release.set()
        await runner.cleanup()


async def get(
    url: str, context: ssl.SSLContext | None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """One GET on a fresh connection (so every call is a new handshake)."""
    connector = aiohttp.TCPConnector(ssl=context if context is not None else False, force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(url, headers=headers) as response,
    ):
        return response.status, await response.read()


async def served_subject(url: str, trust: ssl.SSLContext) -> str:
    """The subject CN of the certificate the server at https `url` presents on a fresh handshake."""
    host, port = url.removeprefix("https://").rsplit(":", 1)
    _, writer = await asyncio.open_connection(host, int(port), ssl=trust)
    peer = writer.get_extra_info("peercert")
    writer.close()
    await writer.wait_closed()
    return str(dict(item[0] for item in peer["subject"])["commonName"])


async def handshake_refused(url: str, context: ssl.SSLContext, headers: dict[str, str]) -> str:
    """The error a client meets when the server refuses it; TLS 1.3 reports a refused client certificate
    only when the client first reads, so the request is sent and must get no answer."""
    try:
        status, _ = await get(url, context, headers)
    except (aiohttp.ClientError, ssl.SSLError, ConnectionError, asyncio.IncompleteReadError) as error:
        return repr(error)
    raise AssertionError(f"the server answered {status} instead of refusing the handshake")
