"""TLS on the proxied port, with real handshakes: TLS 1.2+ with AEAD suites only, client certificates
verified against `client_ca_file` (no certificate, a wrong CA's and an expired one are all refused before
a byte reaches the upstream), the verified subject in the access line, and certificate files reloaded on
change: the next handshake uses the new certificate or CA, a broken file leaves the running one."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import structlog
from certutil import Issued, Pki, new_authority
from opsrig import Launch, OpsProxy, ops_launcher, poll, scrape, value
from proxyrig import RecordingUpstream, TokenFactory, config_text
from tlsrig import client_context, get, handshake_refused, https, listener_tls_block


@pytest.fixture
async def launch() -> AsyncIterator[Launch]:
    async with ops_launcher() as start:
        yield start


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki.create(tmp_path / "pki")


@pytest.fixture
def bearer(token: TokenFactory) -> dict[str, str]:
    return {"Authorization": f"Bearer {token('proxy:use', sub='alice')}"}


async def tls_proxy(
    launch: Launch, tmp_path: Path, upstream: RecordingUpstream, secret: bytes, block: str, **options: float
) -> OpsProxy:
    path = tmp_path / "tls.yaml"
    path.write_text(config_text(upstream.url, secret) + block)
    proxy = await launch(path, **options)
    proxy.url = https(proxy.url)
    return proxy


def access_lines(logs: list[dict[str, object]]) -> list[dict[str, object]]:
    return [line for line in logs if line["event"] == "request"]


async def test_https_listener_forwards_and_plain_http_gets_nothing_through(
    launch: Launch,
    tmp_path: Path,
    upstream: RecordingUpstream,
    hs_secret: bytes,
    pki: Pki,
    bearer: dict[str, str],
) -> None:
    proxy = await tls_proxy(launch, tmp_path, upstream, hs_secret, listener_tls_block(pki.server))
    status, body = await get(proxy.url + "/items?x=1", client_context(pki.ca.cert_file), bearer)
    assert status == 200 and json.loads(body)["raw_path"] == "/items?x=1"
    assert upstream.last().header("X-Forwarded-Proto") == ["https"]
    with pytest.raises(aiohttp.ClientError):  # plain HTTP on the TLS port: no HTTP answer at all
        await get(proxy.url.replace("https://", "http://") + "/items", None, bearer)
    assert len(upstream.requests) == 1


@pytest.mark.parametrize(
    ("version", "ciphers"),
    [
        (ssl.TLSVersion.TLSv1_1, "ALL:@SECLEVEL=0"),
        (ssl.TLSVersion.TLSv1_2, "ECDHE+AES128+SHA:ECDHE+AES256+SHA"),
    ],
    ids=["tls1.1", "tls1.2-cbc-sha1"],
)
async def test_old_protocols_and_weak_suites_are_refused(
    launch: Launch,
    tmp_path: Path,
    upstream: RecordingUpstream,
    hs_secret: bytes,
    pki: Pki,
    bearer: dict[str, str],
    version: ssl.TLSVersion,
    ciphers: str,
) -> None:
    proxy = await tls_proxy(launch, tmp_path, upstream, hs_secret, listener_tls_block(pki.server))
    context = client_context(pki.ca.cert_file)
    with warnings.catch_warnings():  # a deliberately old client: Python warns about configuring one
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.maximum_version = version
    context.set_ciphers(ciphers)
    await handshake_refused(proxy.url + "/items", context, bearer)
    assert upstream.requests == []


async def test_client_certificates_are_verified_and_the_subject_is_logged(
    launch: Launch,
    tmp_path: Path,
    upstream: RecordingUpstream,
    hs_secret: bytes,
    pki: Pki,
    bearer: dict[str, str],
) -> None:
    block = listener_tls_block(pki.server, client_ca=pki.ca.cert_file)
    proxy = await tls_proxy(launch, tmp_path, upstream, hs_secret, block)
    trust = pki.ca.cert_file
    with structlog.testing.capture_logs() as logs:
        status, _ = await get(proxy.url + "/items", client_context(trust, pki.client), bearer)
    assert status == 200
    [line] = access_lines(logs)
    assert line["client_cert"] == "CN=svc-agent,O=authproxy tests" and line["subject"] == "alice"
    for refused in (None, pki.wrong_client, pki.expired_client):
        await handshake_refused(proxy.url + "/items", client_context(trust, refused), bearer)
    assert len(upstream.requests) == 1


async def test_optional_client_certificate_is_logged_when_presented(
    launch: Launch,
    tmp_path: Path,
    upstream: RecordingUpstream,
    hs_secret: bytes,
    pki: Pki,
    bearer: dict[str, str],
) -> None:
    block = listener_tls_block(pki.server, client_ca=pki.ca.cert_file, client_auth="optional")
    proxy = await tls_proxy(launch, tmp_path, upstream, hs_secret, block)
    with structlog.testing.capture_logs() as logs:
        assert (await get(proxy.url + "/items", client_context(pki.ca.cert_file), bearer))[0] == 200
        assert (await get(proxy.url + "/items", client_context(pki.ca.cert_file, pki.client), bearer))[
            0
        ] == 200
        assert (await get(proxy.url + "/items", client_context(pki.ca.cert_file)))[0] == 401
    without, with_cert, denied = access_lines(logs)
    assert "client_cert" not in without and "client_cert" not in denied
    assert with_cert["client_cert"] == "CN=svc-agent,O=authproxy tests"
    # A certificate from an untrusted CA is still refused: optional means "may be absent", not "unchecked".
    await handshake_refused(proxy.url + "/items", client_context(pki.ca.cert_file, pki.wrong_client), bearer)
    assert len(upstream.requests) == 2


async def served_certificate(url: str, trust: ssl.SSLContext) -> str:
    """The subject CN of the certificate the server presents on a fresh handshake."""
    host, port = url.removeprefix("https://").rsplit(":", 1)
    _, writer = await asyncio.open_connection(host, int(port), ssl=trust)
    peer = writer.get_extra_info("peercert")
    writer.close()
    await writer.wait_closed()
    return str(dict(item[0] for item in peer["subject"])["commonName"])


async def test_renewed_certificate_and_client_ca_are_used_from_the_next_handshake(
    launch: Launch,
    tmp_path: Path,
    upstream: RecordingUpstream,
    hs_secret: bytes,
    pki: Pki,
    bearer: dict[str, str],
    client: aiohttp.ClientSession,
) -> None:
    live = tmp_path / "live"  # what a mounted Secret would hold
    live.mkdir()
    for name, source in (
        ("tls.crt", pki.server.cert_file),
        ("tls.key", pki.server.key_file),
        ("ca.crt", pki.ca.cert_file),
    ):
        shutil.copy(source, live / name)
    block = listener_tls_block(
        Issued(live / "tls.crt", live / "tls.key", pki.server.certificate), client_ca=live / "ca.crt"
    )
    proxy = await tls_proxy(launch, tmp_path, upstream, hs_secret, block, interval=0.05)
    new_ca = new_authority(tmp_path / "pki", "new-ca")
    renewed, new_client = (
        new_ca.issue(tmp_path / "pki", "proxy-renewed"),
        new_ca.issue(tmp_path / "pki", "svc-new", server=False),
    )
    both = client_context(pki.ca.cert_file, pki.client)
    both.load_verify_locations(cafile=str(new_ca.cert_file))
    assert await served_certificate(proxy.url, both) == "proxy"

    shutil.copy(renewed.cert_file, live / "tls.crt")
    shutil.copy(renewed.key_file, live / "tls.key")
    shutil.copy(new_ca.cert_file, live / "ca.crt")

    async def reloaded() -> bool:
        return value(await scrape(client, proxy.admin_url), "authproxy_config_reloads_total") >= 1

    await poll(reloaded)
    fresh = client_context(new_ca.cert_file, new_client)
    assert await served_certificate(proxy.url, fresh) == "proxy-renewed"
    assert (await get(proxy.url + "/items", fresh, bearer))[0] == 200
    # The old client CA is gone from the trust store: its certificates are refused now.
    old = client_context(new_ca.cert_file, pki.client)
    await handshake_refused(proxy.url + "/items", old, bearer)
    assert len(upstream.requests) == 1


async def test_a_broken_certificate_file_keeps_the_running_certificate(
    launch: Launch,
    tmp_path: Path,
    upstream: RecordingUpstream,
    hs_secret: bytes,
    pki: Pki,
    bearer: dict[str, str],
    client: aiohttp.ClientSession,
) -> None:
    live = tmp_path / "live"
    live.mkdir()
    shutil.copy(pki.server.cert_file, live / "tls.crt")
    shutil.copy(pki.server.key_file, live / "tls.key")
    block = f"tls:\n  cert_file: {live / 'tls.crt'}\n  key_file: {live / 'tls.key'}\n"
    proxy = await tls_proxy(launch, tmp_path, upstream, hs_secret, block, interval=0.05)
    # Half a rotation: a new certificate whose key has not arrived yet.
    shutil.copy(pki.client.cert_file, live / "tls.crt")

    async def refused() -> bool:
        return value(await scrape(client, proxy.admin_url), "authproxy_config_reload_failures_total") >= 1

    with structlog.testing.capture_logs() as logs:
        await poll(refused)
    [failure] = [line for line in logs if line["event"] == "config reload failed; the running policy stays"]
    assert any(
        "tls.cert_file:" in problem and "KEY_VALUES_MISMATCH" in problem for problem in failure["problems"]
    )
    assert await served_certificate(proxy.url, client_context(pki.ca.cert_file)) == "proxy"


async def test_turning_tls_off_in_the_file_needs_a_restart_and_keeps_tls_running(
    launch: Launch,
    tmp_path: Path,
    upstream: RecordingUpstream,
    hs_secret: bytes,
    pki: Pki,
    bearer: dict[str, str],
    client: aiohttp.ClientSession,
) -> None:
    block = listener_tls_block(pki.server, client_ca=pki.ca.cert_file)
    proxy = await tls_proxy(launch, tmp_path, upstream, hs_secret, block, interval=0.05)
    # The same file without client certificates: a reload may not loosen what the handshake demands.
    with structlog.testing.capture_logs() as logs:
        proxy.config_path.write_text(config_text(upstream.url, hs_secret) + listener_tls_block(pki.server))

        async def reloaded() -> bool:
            return value(await scrape(client, proxy.admin_url), "authproxy_config_reloads_total") >= 1

        await poll(reloaded)
    [warning] = [line for line in logs if line["event"].startswith("config change needs a restart")]
    assert (warning["key"], warning["running"], warning["configured"]) == (
        "tls",
        "on, client certificate required",
        "on",
    )
    await handshake_refused(proxy.url + "/items", client_context(pki.ca.cert_file), bearer)
    assert (await get(proxy.url + "/items", client_context(pki.ca.cert_file, pki.client), bearer))[0] == 200
    assert len(upstream.requests) == 1
