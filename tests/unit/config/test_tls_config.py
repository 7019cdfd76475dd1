"""`tls:` (the proxied port) and `upstream.tls:`: real certificate files are loaded at config load, so a
missing file, a key that does not match its certificate or a CA bundle with no certificate is a located
error `authproxy check` prints, before anything listens."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from authproxy.tls import TLS12_CIPHERS
from tests.rigs.certs import Pki

if TYPE_CHECKING:
    from tests.rigs.configdir import ConfigDir

HEAD = "jwt:\n  algorithms: [HS256]\n  keys: [{secret: 0123456789abcdef0123456789abcdef}]\n  audience: api\n"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.create(tmp_path_factory.mktemp("pki"))


def listener(pki: Pki, extra: str = "", *, key: Path | None = None) -> str:
    """A config whose `tls:` key is on line 6 and cert_file on line 7."""
    return (
        f"upstream: {{url: http://127.0.0.1:7777}}\n{HEAD}tls:\n  cert_file: {pki.server.cert_file}\n"
        f"  key_file: {key or pki.server.key_file}\n{extra}"
    )


def upstream(url: str, block: str) -> str:
    """A config whose `tls:` under upstream is on line 3."""
    return f"upstream:\n  url: {url}\n  tls:\n{block}{HEAD}"


def test_listener_tls_loads_a_tls12_plus_context(cfg: ConfigDir, pki: Pki) -> None:
    config = cfg.config(listener(pki))
    tls = config.tls
    assert tls is not None and tls.client_ca_file is None and tls.line == 6
    assert tls.context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert tls.context.verify_mode == ssl.CERT_NONE
    tls12 = {c["name"] for c in tls.context.get_ciphers() if c["protocol"] == "TLSv1.2"}
    # forward secrecy (EC)DHE and AEAD only: no CBC, no SHA-1 MAC, no static RSA key exchange
    assert tls12 and all(("GCM" in name or "CHACHA20" in name) and "DHE-" in name for name in tls12)
    assert TLS12_CIPHERS.startswith("ECDHE+AESGCM")


def test_client_ca_turns_verification_on_required_or_optional(cfg: ConfigDir, pki: Pki) -> None:
    required = cfg.config(listener(pki, f"  client_ca_file: {pki.ca.cert_file}\n")).tls
    assert required is not None and required.context.verify_mode == ssl.CERT_REQUIRED
    optional = cfg.config(
        listener(pki, f"  client_ca_file: {pki.ca.cert_file}\n  client_auth: optional\n")
    ).tls
    assert optional is not None and optional.context.verify_mode == ssl.CERT_OPTIONAL


def test_paths_are_relative_to_the_config_directory(cfg: ConfigDir, pki: Pki) -> None:
    (cfg.path / "certs").mkdir()
    for source in (pki.server.cert_file, pki.server.key_file):
        (cfg.path / "certs" / source.name).write_bytes(source.read_bytes())
    text = listener(pki).replace(str(pki.server.cert_file), f"certs/{pki.server.cert_file.name}")
    text = text.replace(str(pki.server.key_file), f"certs/{pki.server.key_file.name}")
    tls = cfg.config(text).tls
    assert tls is not None and tls.cert_file == f"certs/{pki.server.cert_file.name}"


def test_missing_certificate_file_is_located(cfg: ConfigDir, pki: Pki) -> None:
    text = listener(pki).replace(str(pki.server.cert_file), "nowhere.crt")
    assert cfg.errors(text) == ["config.yaml:7: tls.cert_file: cannot read nowhere.crt"]


def test_key_of_another_certificate_is_refused(cfg: ConfigDir, pki: Pki) -> None:
    [error] = cfg.errors(listener(pki, key=pki.client.key_file))
    assert error.startswith("config.yaml:7: tls.cert_file: ")
    assert "are not a usable certificate and key (KEY_VALUES_MISMATCH)" in error


def test_client_ca_file_without_a_certificate_is_refused(cfg: ConfigDir, pki: Pki) -> None:
    empty = cfg.path / "empty.pem"
    empty.write_text("not a certificate\n")
    [error] = cfg.errors(listener(pki, f"  client_ca_file: {empty}\n"))
    assert error.startswith(f"config.yaml:9: tls.client_ca_file: {empty} holds no usable CA certificate")


def test_client_auth_needs_a_client_ca(cfg: ConfigDir, pki: Pki) -> None:
    assert cfg.errors(listener(pki, "  client_auth: optional\n")) == [
        "config.yaml:9: tls.client_auth: needs tls.client_ca_file"
    ]


def test_client_auth_choices_and_unknown_keys(cfg: ConfigDir, pki: Pki) -> None:
    text = listener(pki, f"  client_ca_file: {pki.ca.cert_file}\n  client_auth: maybe\n  ciphers: ALL\n")
    assert cfg.errors(text) == [
        "config.yaml:10: tls.client_auth: must be one of required, optional; got 'maybe'",
        "config.yaml:11: unknown key 'ciphers' in tls",
    ]


def test_listener_tls_needs_cert_and_key(cfg: ConfigDir) -> None:
    text = f"upstream: {{url: http://127.0.0.1:7777}}\n{HEAD}tls: {{cert_file: a.crt}}\n"
    assert cfg.errors(text) == ["config.yaml:6: missing required key 'key_file' in tls"]


def test_upstream_tls_with_ca_server_name_and_client_certificate(cfg: ConfigDir, pki: Pki) -> None:
    block = (
        f"    ca_file: {pki.ca.cert_file}\n    server_name: upstream.internal\n"
        f"    cert_file: {pki.client.cert_file}\n    key_file: {pki.client.key_file}\n"
    )
    tls = cfg.config(upstream("https://10.0.0.1:8443", block)).upstream.tls
    assert tls is not None and tls.server_name == "upstream.internal" and tls.ca_file == str(pki.ca.cert_file)
    assert tls.context.verify_mode == ssl.CERT_REQUIRED and tls.context.check_hostname
    assert tls.context.minimum_version == ssl.TLSVersion.TLSv1_2
    # Only the configured CA is trusted, not the system's bundle as well.
    assert [c["subject"] for c in tls.context.get_ca_certs()] == [((("commonName", "authproxy test ca"),),)]


def test_upstream_tls_needs_https(cfg: ConfigDir, pki: Pki) -> None:
    errors = cfg.errors(upstream("http://10.0.0.1:8080", f"    ca_file: {pki.ca.cert_file}\n"))
    assert errors == ["config.yaml:3: upstream.tls: needs an https:// upstream.url"]


def test_upstream_client_certificate_needs_its_key(cfg: ConfigDir, pki: Pki) -> None:
    errors = cfg.errors(upstream("https://10.0.0.1", f"    cert_file: {pki.client.cert_file}\n"))
    assert errors == [
        "config.yaml:3: upstream.tls: a client certificate needs cert_file and key_file; key_file is missing"
    ]


def test_upstream_ca_file_missing(cfg: ConfigDir) -> None:
    errors = cfg.errors(upstream("https://10.0.0.1", "    ca_file: gone.pem\n"))
    assert errors == ["config.yaml:4: upstream.tls.ca_file: cannot read gone.pem: No such file or directory"]


def test_every_listener_tls_problem_is_reported_at_once(cfg: ConfigDir, pki: Pki) -> None:
    text = listener(pki, "  client_ca_file: gone-ca.pem\n", key=pki.client.key_file)
    mismatch, missing = cfg.errors(text)
    assert mismatch.startswith("config.yaml:7: tls.cert_file: ") and "KEY_VALUES_MISMATCH" in mismatch
    assert missing == "config.yaml:9: tls.client_ca_file: cannot read gone-ca.pem: No such file or directory"


def test_client_auth_without_a_ca_does_not_hide_a_bad_key(cfg: ConfigDir, pki: Pki) -> None:
    mismatch, needs_ca = cfg.errors(listener(pki, "  client_auth: optional\n", key=pki.client.key_file))
    assert mismatch.startswith("config.yaml:7: tls.cert_file: ") and "KEY_VALUES_MISMATCH" in mismatch
    assert needs_ca == "config.yaml:9: tls.client_auth: needs tls.client_ca_file"


def test_every_upstream_tls_problem_is_reported_at_once(cfg: ConfigDir, pki: Pki) -> None:
    block = (
        f"    ca_file: gone.pem\n    cert_file: {pki.client.cert_file}\n    key_file: {pki.server.key_file}\n"
    )
    missing, mismatch = cfg.errors(upstream("https://10.0.0.1", block))
    assert missing == "config.yaml:4: upstream.tls.ca_file: cannot read gone.pem: No such file or directory"
    assert (
        mismatch.startswith("config.yaml:5: upstream.tls.cert_file: ") and "KEY_VALUES_MISMATCH" in mismatch
    )
