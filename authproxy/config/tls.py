"""The `tls:` blocks: a listener's (`tls:` for the proxied port; any other listener may reuse
`read_listener_tls`) and an upstream's (`upstream.tls:`). Paths are relative to the config file's
directory; the files are loaded into an SSLContext here, so `authproxy check` reports a bad one.
"""

from __future__ import annotations

import os
from typing import Literal, cast

from authproxy.config.fields import (
    Checks,
    Invalid,
    Report,
    Section,
    model_keys,
    read_choice,
    read_section,
    read_str,
)
from authproxy.config.model import ListenerTls, UpstreamTls
from authproxy.config.source import Node
from authproxy.tls import TlsFileErrors, client_context, server_context

__all__ = ["LISTENER_TLS_KEYS", "UPSTREAM_TLS_KEYS", "read_listener_tls", "read_upstream_tls", "tls_files"]

# `context` is made from the files at load, not written.
LISTENER_TLS_KEYS = model_keys(ListenerTls, skip=("context",))
UPSTREAM_TLS_KEYS = model_keys(UpstreamTls, skip=("context",))


def _paths(
    checks: Checks, report: Report, section: Section, names: tuple[str, ...], base_dir: str
) -> dict[str, str]:
    """The given file settings, resolved against the config's directory; one not a string fails `checks`."""
    files: dict[str, str] = {}
    for name in names:
        text = checks.key(section, name, lambda p, n: read_str(report, p, n), None)
        if text is not None:
            files[name] = os.path.join(base_dir, text)
    return files


def read_listener_tls(report: Report, path: str, line: int, node: Node, base_dir: str) -> ListenerTls:
    """`path` is where the block stands ("tls", "authz_tls"…): it prefixes every message."""
    section = read_section(report, path, line, node, LISTENER_TLS_KEYS, ("cert_file", "key_file"))
    checks = Checks()
    files = _paths(checks, report, section, ("cert_file", "key_file", "client_ca_file"), base_dir)
    choices = ("required", "optional")
    auth = checks.key(section, "client_auth", lambda p, n: read_choice(report, p, n, choices), "required")
    if (auth_node := section.get("client_auth")) is not None and "client_ca_file" not in section.entries:
        # Reported, and the files are still checked: every problem of the block in one pass.
        report.error(auth_node.line, f"{path}.client_auth: needs {path}.client_ca_file")
        checks.failed.add("client_auth")
    if not checks.ok("cert_file", "key_file", "client_ca_file") or not {"cert_file", "key_file"} <= set(
        files
    ):
        raise Invalid
    cert, key, client_ca = files["cert_file"], files["key_file"], files.get("client_ca_file")
    client_auth = cast(Literal["required", "optional"], auth)
    try:
        context = server_context(path, cert, key, client_ca, client_auth)
    except TlsFileErrors as bad:
        raise _report_files(report, section, bad) from None
    checks.done()
    return ListenerTls(cert, key, line, context, client_ca, client_auth)


def read_upstream_tls(report: Report, line: int, node: Node, base_dir: str) -> UpstreamTls:
    path = "upstream.tls"
    section = read_section(report, path, line, node, UPSTREAM_TLS_KEYS)
    checks = Checks()
    files = _paths(checks, report, section, ("ca_file", "cert_file", "key_file"), base_dir)
    server_name = checks.key(section, "server_name", lambda p, n: read_str(report, p, n), None)
    checks.done()
    if ("cert_file" in files) != ("key_file" in files):
        missing = "key_file" if "cert_file" in files else "cert_file"
        report.error(line, f"{path}: a client certificate needs cert_file and key_file; {missing} is missing")
        raise Invalid
    ca, cert, key = files.get("ca_file"), files.get("cert_file"), files.get("key_file")
    try:
        context = client_context(path, ca, cert, key)
    except TlsFileErrors as bad:
        raise _report_files(report, section, bad) from None
    return UpstreamTls(line, context, ca, server_name, cert, key)


def _report_files(report: Report, section: Section, bad: TlsFileErrors) -> Invalid:
    for error in bad.errors:
        report.error(section.key_line(error.field.rpartition(".")[2]), str(error))
    return Invalid()


def tls_files(listener: ListenerTls | None, upstream: UpstreamTls | None) -> tuple[str, ...]:
    """Every file the TLS settings name: a reload watches them like the config file itself."""
    names: list[str | None] = []
    if listener is not None:
        names += [listener.cert_file, listener.key_file, listener.client_ca_file]
    if upstream is not None:
        names += [upstream.ca_file, upstream.cert_file, upstream.key_file]
    return tuple(name for name in names if name is not None)
