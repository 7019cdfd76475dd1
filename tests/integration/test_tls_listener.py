"""TLS on the proxied port, with real handshakes: TLS 1.2+ with AEAD suites only, client certificates
verified against `client_ca_file` (no certificate, a wrong CA's and an expired one are all refused before
a byte reaches the upstream), the verified subject in the access line, and certificate files reloaded on
change: the next handshake uses the new certificate or CA, a broken file leaves the running one."""

from __future__ import annotations

import json
import shutil
import ssl
import warnings
from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog

from tests.rigs.certs import Issued, new_authority
from tests.rigs.keys import TokenFactory
from tests.rigs.proxy import RunningProxy as OpsProxy
from tests.rigs.tls import (
    TlsWorld,
    client_context,
    get,
    handshake_refused,
    https,
    listener_tls_block,
    served_subject,
    tls_world,
)
from tests.rigs.upstream import RecordingUpstream

RELOADED = "authproxy_config_reloads_total"
REFUSED = "authproxy_config_reload_failures_total"


@pytest.fixture
async def world(
    tmp_path: Path,
    upstream: RecordingUpstream,
    hs_secret: bytes,
    token: TokenFactory,
    client: aiohttp.ClientSession,
) -> AsyncIterator[TlsWorld]:
    async with tls_world(tmp_path, upstream, hs_secret, token, client) as made:
        yield made


async def tls_proxy(world: TlsWorld, block: str, interval: float | None = None) -> OpsProxy:
    proxy = await world.proxy(world.config() + block, interval=interval)
    proxy.url = https(proxy.url)
    return proxy


def access_lines(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [line for line in logs if line["event"] == "request"]


def mounted_secret(world: TlsWorld, *, client_ca: bool) -> tuple[Path, str]:
    """The server certificate, key (and CA) copied where a mounted Secret would hold them, and the
    `tls:` block naming those copies."""
    live = world.directory / "live"
    live.mkdir()
    pki = world.pki
    shutil.copy(pki.server.cert_file, live / "tls.crt")
    shutil.copy(pki.server.key_file, live / "tls.key")
    shutil.copy(pki.ca.cert_file, live / "ca.crt")
    copied = Issued(live / "tls.crt", live / "tls.key", pki.server.certificate)
    return live, listener_tls_block(copied, client_ca=live / "ca.crt" if client_ca else None)


async def test_https_listener_forwards_and_plain_http_gets_nothing_through(world: TlsWorld) -> None:
    proxy = await tls_proxy(world, listener_tls_block(world.pki.server))
    status, body = await get(proxy.url + "/items?x=1", client_context(world.pki.ca.cert_file), world.bearer)
    assert status == 200 and json.loads(body)["raw_path"] == "/items?x=1"
    assert world.upstream.last().header("X-Forwarded-Proto") == ["https"]
    with pytest.raises(aiohttp.ClientError):  # plain HTTP on the TLS port: no HTTP answer at all
        await get(proxy.url.replace("https://", "http://") + "/items", None, world.bearer)
    assert len(world.upstream.requests) == 1


@pytest.mark.parametrize(
    ("version", "ciphers"),
    [
        (ssl.TLSVersion.TLSv1_1, "ALL:@SECLEVEL=0"),
        (ssl.TLSVersion.TLSv1_2, "ECDHE+AES128+SHA:ECDHE+AES256+SHA"),
    ],
    ids=["tls1.1", "tls1.2-cbc-sha1"],
)
async def test_old_protocols_and_weak_suites_are_refused(
    world: TlsWorld, version: ssl.TLSVersion, ciphers: str
) -> None:
    proxy = await tls_proxy(world, listener_tls_block(world.pki.server))
    context = client_context(world.pki.ca.cert_file)
    with warnings.catch_warnings():  # a deliberately old client: Python warns about configuring one
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.maximum_version = version
    context.set_ciphers(ciphers)
    await handshake_refused(proxy.url + "/items", context, world.bearer)
    assert world.upstream.requests == []


async def test_client_certificates_are_verified_and_the_subject_is_logged(world: TlsWorld) -> None:
    pki = world.pki
    proxy = await tls_proxy(world, listener_tls_block(pki.server, client_ca=pki.ca.cert_file))
    trust = pki.ca.cert_file
    with structlog.testing.capture_logs() as logs:
        status, _ = await get(proxy.url + "/items", client_context(trust, pki.client), world.bearer)
    assert status == 200
    [line] = access_lines(logs)
    assert line["client_cert"] == "CN=svc-agent,O=authproxy tests" and line["subject"] == "alice"
    for refused in (None, pki.wrong_client, pki.expired_client):
        await handshake_refused(proxy.url + "/items", client_context(trust, refused), world.bearer)
    assert len(world.upstream.requests) == 1


async def test_optional_client_certificate_is_logged_when_presented(world: TlsWorld) -> None:
    pki, bearer = world.pki, world.bearer
    block = listener_tls_block(pki.server, client_ca=pki.ca.cert_file, client_auth="optional")
    proxy = await tls_proxy(world, block)
    url = proxy.url + "/items"
    with structlog.testing.capture_logs() as logs:
        assert (await get(url, client_context(pki.ca.cert_file), bearer))[0] == 200
        assert (await get(url, client_context(pki.ca.cert_file, pki.client), bearer))[0] == 200
        assert (await get(url, client_context(pki.ca.cert_file)))[0] == 401
    without, with_cert, denied = access_lines(logs)
    assert "client_cert" not in without and "client_cert" not in denied
    assert with_cert["client_cert"] == "CN=svc-agent,O=authproxy tests"
    # A certificate from an untrusted CA is still refused: optional means "may be absent", not "unchecked".
    await handshake_refused(url, client_context(pki.ca.cert_file, pki.wrong_client), bearer)
    assert len(world.upstream.requests) == 2


async def test_renewed_certificate_and_client_ca_are_used_from_the_next_handshake(world: TlsWorld) -> None:
    pki = world.pki
    live, block = mounted_secret(world, client_ca=True)
    proxy = await tls_proxy(world, block, interval=0.05)
    new_ca = new_authority(pki.directory, "new-ca")
    renewed = new_ca.issue(pki.directory, "proxy-renewed")
    new_client = new_ca.issue(pki.directory, "svc-new", server=False)
    both = client_context(pki.ca.cert_file, pki.client)
    both.load_verify_locations(cafile=str(new_ca.cert_file))
    assert await served_subject(proxy.url, both) == "proxy"

    shutil.copy(renewed.cert_file, live / "tls.crt")
    shutil.copy(renewed.key_file, live / "tls.key")
    shutil.copy(new_ca.cert_file, live / "ca.crt")
    await world.counted(proxy, RELOADED)

    fresh = client_context(new_ca.cert_file, new_client)
    assert await served_subject(proxy.url, fresh) == "proxy-renewed"
    assert (await get(proxy.url + "/items", fresh, world.bearer))[0] == 200
    # The old client CA is gone from the trust store: its certificates are refused now.
    old = client_context(new_ca.cert_file, pki.client)
    await handshake_refused(proxy.url + "/items", old, world.bearer)
    assert len(world.upstream.requests) == 1


async def test_a_broken_certificate_file_keeps_the_running_certificate(world: TlsWorld) -> None:
    live, block = mounted_secret(world, client_ca=False)
    proxy = await tls_proxy(world, block, interval=0.05)
    # Half a rotation: a new certificate whose key has not arrived yet.
    shutil.copy(world.pki.client.cert_file, live / "tls.crt")
    with structlog.testing.capture_logs() as logs:
        await world.counted(proxy, REFUSED)
    [failure] = [line for line in logs if line["event"] == "config reload failed; the running policy stays"]
    problems = failure["problems"]
    assert any("tls.cert_file:" in problem and "KEY_VALUES_MISMATCH" in problem for problem in problems)
    assert await served_subject(proxy.url, client_context(world.pki.ca.cert_file)) == "proxy"


async def test_turning_tls_off_in_the_file_needs_a_restart_and_keeps_tls_running(world: TlsWorld) -> None:
    pki = world.pki
    proxy = await tls_proxy(world, listener_tls_block(pki.server, client_ca=pki.ca.cert_file), interval=0.05)
    # The same file without client certificates: a reload may not loosen what the handshake demands.
    with structlog.testing.capture_logs() as logs:
        proxy.config_path.write_text(world.config() + listener_tls_block(pki.server))
        await world.counted(proxy, RELOADED)
    [warning] = [line for line in logs if line["event"].startswith("config change needs a restart")]
    assert (warning["key"], warning["running"], warning["configured"]) == (
        "tls",
        "on, client certificate required",
        "on",
    )
    await handshake_refused(proxy.url + "/items", client_context(pki.ca.cert_file), world.bearer)
    with_cert = client_context(pki.ca.cert_file, pki.client)
    assert (await get(proxy.url + "/items", with_cert, world.bearer))[0] == 200
    assert len(world.upstream.requests) == 1
