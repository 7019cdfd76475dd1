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
from certutil import Pki, new_authority
from opsrig import Launch, OpsProxy, ops_launcher, poll, scrape, value
from proxyrig import RecordingUpstream, TokenFactory, config_text
from tlsrig import https_upstream, upstream_tls_block, with_upstream_tls


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


async def proxy_to(
    launch: Launch, tmp_path: Path, url: str, secret: bytes, block: str, interval: float | None = None
) -> OpsProxy:
    path = tmp_path / "upstream-tls.yaml"
    path.write_text(with_upstream_tls(config_text(url, secret), block))
    return await launch(path, interval=interval)


async def call(
    client: aiohttp.ClientSession, url: str, headers: dict[str, str]
) -> tuple[int, dict[str, object]]:
    async with client.get(url, headers=headers) as resp:
        return resp.status, json.loads(await resp.read())


async def test_private_ca_upstream_is_reached_over_tls(
    launch: Launch,
    tmp_path: Path,
    upstream: RecordingUpstream,
    hs_secret: bytes,
    pki: Pki,
    client: aiohttp.ClientSession,
    bearer: dict[str, str],
) -> None:
    async with https_upstream(upstream, pki.server) as up:
        proxy = await proxy_to(launch, tmp_path, up.url, hs_secret, upstream_tls_block(ca=pki.ca.cert_file))
        status, body = await call(client, proxy.url + "/items?q=1", bearer)
    assert (status, body["raw_path"]) == (200, "/items?q=1")


@pytest.mark.parametrize("case", ["wrong_ca", "expired", "other_name", "system_cas"])
async def test_an_untrusted_upstream_certificate_is_a_502_with_the_reason(
    launch: Launch,
    tmp_path: Path,
    upstream: RecordingUpstream,
    hs_secret: bytes,
    pki: Pki,
    client: aiohttp.ClientSession,
    bearer: dict[str, str],
    case: str,
) -> None:
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
    async with https_upstream(upstream, served) as up:
        proxy = await proxy_to(launch, tmp_path, up.url, hs_secret, block)
        status, body = await call(client, proxy.url + "/items", bearer)
        assert status == 502
        assert body["error"] == "upstream_tls_failed"
        detail = str(body["detail"])
        assert detail.startswith("the upstream's TLS certificate was refused: ") and reason in detail
        samples = await scrape(client, proxy.admin_url)
    assert upstream.requests == []
    assert value(samples, "authproxy_upstream_errors_total") == 1


async def test_server_name_override_checks_the_certificate_against_that_name(
    launch: Launch,
    tmp_path: Path,
    upstream: RecordingUpstream,
    hs_secret: bytes,
    pki: Pki,
    client: aiohttp.ClientSession,
    bearer: dict[str, str],
) -> None:
    named = pki.ca.issue(pki.directory, "up", hosts=("upstream.internal",))
    async with https_upstream(upstream, named) as up:
        block = upstream_tls_block(ca=pki.ca.cert_file, server_name="upstream.internal")
        proxy = await proxy_to(launch, tmp_path, up.url, hs_secret, block)
        status, _ = await call(client, proxy.url + "/items", bearer)
    assert status == 200 and len(upstream.requests) == 1


@pytest.mark.parametrize(
    ("version", "error", "detail"),
    [
        # TLS 1.2 refuses a missing client certificate inside the handshake: we know it was TLS.
        (ssl.TLSVersion.TLSv1_2, "upstream_tls_failed", "the TLS handshake with the upstream failed"),
        # TLS 1.3 finishes the client's side of the handshake first; the refusal arrives as a hang-up.
        (
            ssl.TLSVersion.TLSv1_3,
            "upstream_unavailable",
            "the upstream closed the connection before answering",
        ),
    ],
    ids=["tls1.2", "tls1.3"],
)
async def test_mutual_tls_to_the_upstream(
    launch: Launch,
    tmp_path: Path,
    upstream: RecordingUpstream,
    hs_secret: bytes,
    pki: Pki,
    client: aiohttp.ClientSession,
    bearer: dict[str, str],
    version: ssl.TLSVersion,
    error: str,
    detail: str,
) -> None:
    async with https_upstream(upstream, pki.server, client_ca=pki.ca.cert_file, max_version=version) as up:
        with_cert = upstream_tls_block(ca=pki.ca.cert_file, client=pki.client)
        proxy = await proxy_to(launch, tmp_path, up.url, hs_secret, with_cert)
        assert (await call(client, proxy.url + "/items", bearer))[0] == 200
        without = await proxy_to(launch, tmp_path, up.url, hs_secret, upstream_tls_block(ca=pki.ca.cert_file))
        status, body = await call(client, without.url + "/items", bearer)
    assert (status, body) == (502, {"detail": detail, "error": error})
    assert len(upstream.requests) == 1  # only the request that presented a certificate


async def test_a_rotated_ca_file_is_used_after_the_reload(
    launch: Launch,
    tmp_path: Path,
    upstream: RecordingUpstream,
    hs_secret: bytes,
    pki: Pki,
    client: aiohttp.ClientSession,
    bearer: dict[str, str],
) -> None:
    new_ca = new_authority(pki.directory, "new-ca")
    trusted = tmp_path / "upstream-ca.crt"
    shutil.copy(pki.ca.cert_file, trusted)
    async with https_upstream(upstream, new_ca.issue(pki.directory, "up")) as up:
        block = upstream_tls_block(ca=trusted)
        proxy = await proxy_to(launch, tmp_path, up.url, hs_secret, block, interval=0.05)
        assert (await call(client, proxy.url + "/items", bearer))[0] == 502
        shutil.copy(new_ca.cert_file, trusted)

        async def reloaded() -> bool:
            return value(await scrape(client, proxy.admin_url), "authproxy_config_reloads_total") >= 1

        await poll(reloaded)
        assert (await call(client, proxy.url + "/items", bearer))[0] == 200
    assert len(upstream.requests) == 1
