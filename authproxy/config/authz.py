"""`authz_listen` and `authz:`: the decision port's settings (external authorization mode, authproxy/authz).

    authz_listen: 127.0.0.1:9191   # absent: no decision port
    authz:
      path_prefix: /envoy          # Envoy/Istio ext_authz `path_prefix`, stripped from each check's path
      grpc_listen: 127.0.0.1:9192  # Envoy's gRPC Authorization/Check (the `grpc` extra); absent: not served
      tls: {cert_file: …, key_file: …, client_ca_file: …, client_auth: required}  # HTTPS on authz_listen

The decision port answers nginx on NGINX_PATH and Traefik / ingress-nginx on FORWARD_AUTH_PATH; every
other path must lie under `path_prefix`. A prefix is required (never "/"): with none, a client's own request
to /nginx through Envoy would reach the nginx endpoint and have its X-Original-URI header believed.
"""

from __future__ import annotations

import importlib.util
import os
import re

from authproxy.config.fields import (
    Checks,
    Invalid,
    Report,
    Section,
    model_keys,
    read_address,
    read_bool,
    read_section,
    read_value,
)
from authproxy.config.model import Address, AuthzConfig
from authproxy.config.source import Node
from authproxy.config.tls import read_listener_tls

__all__ = ["AUTHZ_KEYS", "FORWARD_AUTH_PATH", "NGINX_PATH", "parse_path_prefix", "read_authz"]

AUTHZ_KEYS = ("authz_listen", "authz")  # top-level keys this module reads
NGINX_PATH = "/nginx"
FORWARD_AUTH_PATH = "/forward-auth"
_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")
_GRPC_MODULES = ("grpclib", "envoy_data_plane")  # the `grpc` extra
# tls: the HTTP decision port's own, in the shape of the proxied port's `tls:` (the two may differ).
# `listen` is written at the top level as `authz_listen`, beside the other listeners.
_AUTHZ = model_keys(AuthzConfig, skip=("listen",))
_WILDCARD = frozenset({"0.0.0.0", "::"})  # noqa: S104 - compared against, not bound


def parse_path_prefix(text: str) -> str:
    """`/segment[/segment…]` of plain characters, no trailing '/'; ValueError(message) otherwise."""
    if not text.startswith("/") or text == "/":
        raise ValueError(f"must start with '/' and name a segment (such as /envoy); got '{text}'")
    for segment in text.split("/")[1:]:
        if not _SEGMENT.fullmatch(segment) or segment in (".", ".."):
            raise ValueError(
                f"segments must be letters, digits or '._~-' (no '//', no trailing '/'); got '{text}'"
            )
    for fixed in (NGINX_PATH, FORWARD_AUTH_PATH):
        # Overlap would let a check request reach the endpoint that trusts X-Original-* / X-Forwarded-*.
        if f"{text}/".startswith(f"{fixed}/") or f"{fixed}/".startswith(f"{text}/"):
            raise ValueError(f"must not overlap the decision port's {fixed} endpoint; got '{text}'")
    return text


def read_authz(report: Report, top: Section, used: tuple[tuple[str, Address], ...]) -> AuthzConfig:
    """The AuthzConfig (defaults when both keys are absent); Invalid once anything was reported (all of it).

    `used`: (key, address) of the other listeners, which the decision ports must not share a port with.
    """
    errors = len(report.errors)
    checks = Checks()
    listen = checks.key(top, "authz_listen", lambda p, n: _listen(report, top.key_line(p), p, n, used), None)
    if listen is not None:
        used = (*used, ("authz_listen", listen))
    http_port = "authz_listen" in top.entries
    default = AuthzConfig(listen)
    config = checks.key(top, "authz", lambda p, n: _authz(report, top, n, default, used, http_port), default)
    if len(report.errors) != errors:  # an unknown key of `authz` too: no decision port is half-configured
        raise Invalid
    return config


def _authz(
    report: Report,
    top: Section,
    node: Node,
    default: AuthzConfig,
    used: tuple[tuple[str, Address], ...],
    http_port: bool,
) -> AuthzConfig:
    section = read_section(report, "authz", top.key_line("authz"), node, _AUTHZ)
    checks = Checks()
    prefix = checks.key(
        section, "path_prefix", lambda p, n: read_value(report, p, n, parse_path_prefix), default.path_prefix
    )
    if "path_prefix" in section.entries and not http_port:
        report.warn(section.key_line("path_prefix"), "authz.path_prefix: has no effect without authz_listen")
    line = section.key_line("grpc_listen")
    grpc = checks.key(section, "grpc_listen", lambda p, n: _listen(report, line, p, n, used), None)
    if grpc is not None and not all(importlib.util.find_spec(name) for name in _GRPC_MODULES):
        report.error(line, "authz.grpc_listen: needs the grpc extra (pip install 'authproxy[grpc]')")
    base_dir = os.path.dirname(report.file)
    tls_line = section.key_line("tls")
    tls = checks.key(section, "tls", lambda p, n: read_listener_tls(report, p, tls_line, n, base_dir), None)
    if "tls" in section.entries and not http_port:
        report.warn(tls_line, "authz.tls: has no effect without authz_listen (the gRPC port is plain)")
    dry_run = checks.key(section, "dry_run", lambda p, n: read_bool(report, p, n), False)
    checks.done()
    return AuthzConfig(default.listen, prefix, grpc, tls, dry_run)


def _listen(
    report: Report, line: int, key: str, node: Node, used: tuple[tuple[str, Address], ...]
) -> Address:
    """The address under `key`, valid and not sharing a port; Invalid otherwise (reported)."""
    address = read_address(report, key, node)
    _check_port_free(report, line, key, address, used)
    return address


def _check_port_free(
    report: Report, line: int, key: str, mine: Address, used: tuple[tuple[str, Address], ...]
) -> None:
    if mine.port == 0:
        return  # port 0 binds a fresh port each time, so it never collides
    for other_key, other in used:
        if other.port != mine.port:
            continue
        if mine.host == other.host or mine.host in _WILDCARD or other.host in _WILDCARD:
            report.error(line, f"{key}: shares port {mine.port} with {other_key} ({other})")
            raise Invalid
