"""TLS on the decision port (`authz.tls`), with real handshakes: its own certificate (the proxied port may
stay plain or use another), client certificates verified when `client_ca_file` is set (required or
optional), the verified subject in the check's access line, a renewed certificate served from the next
handshake, and every setting problem reported as FILE:LINE."""

from __future__ import annotations

import shutil
import ssl
import textwrap
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog

from authproxy.serve.reload import watched_files
from tests.rigs.authz import AuthzFactory, RunningAuthz
from tests.rigs.certs import Issued, Pki, new_authority
from tests.rigs.configdir import ConfigDir
from tests.rigs.keys import TokenFactory
from tests.rigs.tls import client_context, get, handshake_refused, https, listener_tls_block, served_subject
from tests.rigs.upstream import RecordingUpstream

CHECK = "/envoy/private/doc"


def authz_tls(cert: Issued, *, client_ca: Path | None = None, client_auth: str | None = None) -> str:
    """The proxied port's `tls:` block, under `authz:`: the two ports take the same settings."""
    return "authz:\n" + textwrap.indent(
        listener_tls_block(cert, client_ca=client_ca, client_auth=client_auth), "  "
    )


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki.create(tmp_path / "pki")


@pytest.fixture
def bearer(token: TokenFactory) -> dict[str, str]:
    return {"Authorization": f"Bearer {token('private:read', 'proxy:use', sub='alice')}"}


def checks(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [line for line in logs if line["event"] == "request" and "authz" in line]


async def start(start_authz: AuthzFactory, upstream: RecordingUpstream, block: str) -> RunningAuthz:
    running = await start_authz(upstream.url, authz=block)
    running.authz_url = https(running.authz_url)
    return running


async def test_the_decision_port_speaks_tls_with_its_own_certificate_and_the_proxied_port_stays_plain(
    start_authz: AuthzFactory, upstream: RecordingUpstream, pki: Pki, bearer: dict[str, str]
) -> None:
    authz = await start(start_authz, upstream, authz_tls(pki.server))
    trust = client_context(pki.ca.cert_file)
    assert await get(authz.authz_url + CHECK, trust, bearer) == (200, b"")
    status, body = await get(authz.authz_url + CHECK, trust)
    assert status == 401 and b"missing_token" in body
    assert upstream.requests == []  # the decision port never forwards
    # the proxied port is plain HTTP: the two ports' TLS settings are separate
    status, _ = await get(authz.url + "/public/p", None)
    assert status == 200 and [r.raw_path for r in upstream.requests] == ["/public/p"]
    # a client that does not trust the certificate, and one that speaks plain HTTP, get no answer
    await handshake_refused(authz.authz_url + CHECK, ssl.create_default_context(), bearer)
    with pytest.raises((aiohttp.ClientError, ConnectionError)):
        await get(authz.authz_url.replace("https://", "http://") + CHECK, None, bearer)


async def test_required_client_certificates_are_verified_and_the_subject_is_logged(
    start_authz: AuthzFactory, upstream: RecordingUpstream, pki: Pki, bearer: dict[str, str]
) -> None:
    authz = await start(start_authz, upstream, authz_tls(pki.server, client_ca=pki.ca.cert_file))
    url = authz.authz_url + CHECK
    for refused in (None, pki.wrong_client, pki.expired_client):  # none, an unknown CA's, an expired one
        await handshake_refused(url, client_context(pki.ca.cert_file, refused), bearer)
    with structlog.testing.capture_logs() as logs:
        assert await get(url, client_context(pki.ca.cert_file, pki.client), bearer) == (200, b"")
    (line,) = checks(logs)
    assert (line["client_cert"], line["subject"], line["status"]) == (
        "CN=svc-agent,O=authproxy tests",
        "alice",
        200,
    )


async def test_optional_client_certificates_let_clients_without_one_in(
    start_authz: AuthzFactory, upstream: RecordingUpstream, pki: Pki, bearer: dict[str, str]
) -> None:
    block = authz_tls(pki.server, client_ca=pki.ca.cert_file, client_auth="optional")
    authz = await start(start_authz, upstream, block)
    url = authz.authz_url + CHECK
    with structlog.testing.capture_logs() as logs:
        assert await get(url, client_context(pki.ca.cert_file), bearer) == (200, b"")
        assert await get(url, client_context(pki.ca.cert_file, pki.client), bearer) == (200, b"")
    without, with_cert = checks(logs)
    assert "client_cert" not in without
    assert with_cert["client_cert"] == "CN=svc-agent,O=authproxy tests"
    await handshake_refused(url, client_context(pki.ca.cert_file, pki.wrong_client), bearer)


async def test_a_renewed_certificate_is_served_from_the_next_handshake(
    start_authz: AuthzFactory, upstream: RecordingUpstream, pki: Pki, tmp_path: Path
) -> None:
    live = tmp_path / "live"
    live.mkdir()
    shutil.copy(pki.server.cert_file, live / "tls.crt")
    shutil.copy(pki.server.key_file, live / "tls.key")
    mounted = Issued(live / "tls.crt", live / "tls.key", pki.server.certificate)
    authz = await start(start_authz, upstream, authz_tls(mounted))
    assert await served_subject(authz.authz_url, client_context(pki.ca.cert_file)) == "proxy"
    renewed = pki.ca.issue(tmp_path, "proxy-renewed")
    shutil.copy(renewed.cert_file, live / "tls.crt")
    shutil.copy(renewed.key_file, live / "tls.key")
    assert await authz.service.reloader.reload("test")
    assert await served_subject(authz.authz_url, client_context(pki.ca.cert_file)) == "proxy-renewed"


# --- settings ------------------------------------------------------------------------------------------

HEAD = """\
upstream:
  url: http://127.0.0.1:7777
jwt:
  algorithms: [HS256]
  keys:
    - secret: 0123456789abcdef0123456789abcdef
  audience: api
authz_listen: 127.0.0.1:9191
authz:
  tls:
"""  # `tls:` is line 10; its settings start on line 11


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ConfigDir:
    monkeypatch.chdir(tmp_path)
    return ConfigDir(tmp_path)


def test_settings_are_read_relative_to_the_config_file(cfg: ConfigDir, tmp_path: Path) -> None:
    Pki.create(tmp_path / "pki")
    text = HEAD + "    cert_file: pki/ca-proxy.crt\n    key_file: pki/ca-proxy.key\n"
    text += "    client_ca_file: pki/ca.crt\n    client_auth: optional\n"
    config = cfg.config(text)
    tls = config.authz.tls
    assert tls is not None
    assert (tls.cert_file, tls.client_ca_file, tls.client_auth) == (
        "pki/ca-proxy.crt",
        "pki/ca.crt",
        "optional",
    )
    # a reload watches them like the proxied port's certificate files
    assert set(watched_files(config)) >= {"pki/ca-proxy.crt", "pki/ca-proxy.key", "pki/ca.crt"}


def test_every_problem_is_reported_at_its_line(cfg: ConfigDir, tmp_path: Path) -> None:
    assert cfg.errors(HEAD + "    cert_file: a.crt\n") == [
        "config.yaml:10: missing required key 'key_file' in authz.tls"
    ]
    assert cfg.errors(HEAD + "    cert_file: a.crt\n    key_file: a.key\n") == [
        "config.yaml:11: authz.tls.cert_file: cannot read a.crt"
    ]
    pki = Pki.create(tmp_path / "pki")
    text = HEAD + f"    cert_file: {pki.server.cert_file}\n    key_file: {pki.server.key_file}\n"
    assert cfg.errors(text + "    client_auth: optional\n") == [
        "config.yaml:13: authz.tls.client_auth: needs authz.tls.client_ca_file"
    ]
    assert cfg.errors(text + "    verify: true\n") == ["config.yaml:13: unknown key 'verify' in authz.tls"]
    other = new_authority(tmp_path, "x")
    assert cfg.errors(text + f"    client_ca_file: {other.cert_file}x\n") == [
        f"config.yaml:13: authz.tls.client_ca_file: cannot read {other.cert_file}x: No such file or directory"
    ]
    without_port = text.replace("authz_listen: 127.0.0.1:9191\n", "")
    assert cfg.warnings(without_port) == [
        "config.yaml:9: authz.tls: has no effect without authz_listen (the gRPC port is plain)"
    ]
