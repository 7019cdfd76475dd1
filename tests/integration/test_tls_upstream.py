"""HTTPS upstreams with real TLS: a private CA (`ca_file`), a server-name override, a client certificate
(mTLS to the upstream), and a clear 502 `upstream_tls_failed` when the upstream's certificate is not
trusted, expired or for another name, or when the upstream refuses us; none of those lets a request
through. CA and client certificate files are reloaded on change."""

from __future__ import annotations

import json
import shutil
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.rigs.certs import new_authority
from tests.rigs.keys import TokenFactory
from tests.rigs.metrics import scrape, value
from tests.rigs.proxy import RunningProxy as OpsProxy
from tests.rigs.tls import TlsWorld, https_upstream, tls_world, upstream_tls_block, with_upstream_tls
from tests.rigs.upstream import RecordingUpstream

BEFORE = "before answering"


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


async def proxy_to(world: TlsWorld, url: str, block: str, interval: float | None = None) -> OpsProxy:
    return await world.proxy(with_upstream_tls(world.config(url), block), interval=interval)


async def call(world: TlsWorld, proxy: OpsProxy) -> tuple[int, dict[str, object]]:
    async with world.client.get(proxy.url + "/items?q=1", headers=world.bearer) as resp:
        return resp.status, json.loads(await resp.read())


async def test_private_ca_upstream_is_reached_over_tls(world: TlsWorld) -> None:
    async with https_upstream(world.upstream, world.pki.server) as up:
        proxy = await proxy_to(world, up.url, upstream_tls_block(ca=world.pki.ca.cert_file))
        status, body = await call(world, proxy)
    assert (status, body["raw_path"]) == (200, "/items?q=1")


@pytest.mark.parametrize("case", ["wrong_ca", "expired", "other_name", "system_cas"])
async def test_an_untrusted_upstream_certificate_is_a_502_with_the_reason(world: TlsWorld, case: str) -> None:
    pki = world.pki
    served, block, reason = {
        "wrong_ca": (pki.server, upstream_tls_block(ca=pki.other_ca.cert_file), "unable to get local issuer"),
        "expired": (
            pki.ca.issue(pki.directory, "up", expired=True),
            upstream_tls_block(ca=pki.ca.cert_file),
            "certificate has expired",
        ),
        "other_name": (
            pki.ca.issue(pki.directory, "up", hosts=("upstream.internal",)),
            upstream_tls_block(ca=pki.ca.cert_file),
            "IP address mismatch, certificate is not valid for",
        ),
        # No ca_file: the system's CAs, which never signed our test CA.
        "system_cas": (pki.server, "", "unable to get local issuer"),
    }[case]
    async with https_upstream(world.upstream, served) as up:
        proxy = await proxy_to(world, up.url, block)
        status, body = await call(world, proxy)
        assert status == 502
        assert body["error"] == "upstream_tls_failed"
        detail = str(body["detail"])
        assert detail.startswith("the upstream's TLS certificate was refused: ") and reason in detail
        samples = await scrape(world.client, proxy.admin_url)
    assert world.upstream.requests == []
    assert value(samples, "authproxy_upstream_errors_total") == 1


async def test_server_name_override_checks_the_certificate_against_that_name(world: TlsWorld) -> None:
    named = world.pki.ca.issue(world.pki.directory, "up", hosts=("upstream.internal",))
    async with https_upstream(world.upstream, named) as up:
        block = upstream_tls_block(ca=world.pki.ca.cert_file, server_name="upstream.internal")
        status, _ = await call(world, await proxy_to(world, up.url, block))
    assert status == 200 and len(world.upstream.requests) == 1


@pytest.mark.parametrize(
    ("version", "error", "detail"),
    [
        # TLS 1.2 refuses a missing client certificate inside the handshake: we know it was TLS.
        (ssl.TLSVersion.TLSv1_2, "upstream_tls_failed", "the TLS handshake with the upstream failed"),
        # TLS 1.3 finishes the client's side of the handshake first; the refusal arrives as a hang-up.
        (ssl.TLSVersion.TLSv1_3, "upstream_unavailable", f"the upstream closed the connection {BEFORE}"),
    ],
    ids=["tls1.2", "tls1.3"],
)
async def test_mutual_tls_to_the_upstream(
    world: TlsWorld, version: ssl.TLSVersion, error: str, detail: str
) -> None:
    pki = world.pki
    serving = https_upstream(world.upstream, pki.server, client_ca=pki.ca.cert_file, max_version=version)
    async with serving as up:
        with_cert = await proxy_to(world, up.url, upstream_tls_block(ca=pki.ca.cert_file, client=pki.client))
        assert (await call(world, with_cert))[0] == 200
        without = await proxy_to(world, up.url, upstream_tls_block(ca=pki.ca.cert_file))
        status, body = await call(world, without)
    assert (status, body) == (502, {"detail": detail, "error": error})
    assert len(world.upstream.requests) == 1  # only the request that presented a certificate


async def test_a_rotated_ca_file_is_used_after_the_reload(world: TlsWorld) -> None:
    pki = world.pki
    new_ca = new_authority(pki.directory, "new-ca")
    trusted = world.directory / "upstream-ca.crt"
    shutil.copy(pki.ca.cert_file, trusted)
    async with https_upstream(world.upstream, new_ca.issue(pki.directory, "up")) as up:
        proxy = await proxy_to(world, up.url, upstream_tls_block(ca=trusted), interval=0.05)
        assert (await call(world, proxy))[0] == 502
        shutil.copy(new_ca.cert_file, trusted)
        await world.counted(proxy, "authproxy_config_reloads_total")
        assert (await call(world, proxy))[0] == 200
    assert len(world.upstream.requests) == 1
