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

from authproxy.config.fields import Report, Section, model_keys, read_address, read_section, read_value
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


def read_authz(report: Report, top: Section, used: tuple[tuple[str, Address], ...]) -> AuthzConfig | None:
    """The AuthzConfig (defaults when both keys are absent); None when anything was reported (all of it).

    `used`: (key, address) of the other listeners, which the decision ports must not share a port with.
    """
    errors = len(report.errors)
    listen = _listen(report, top.key_line("authz_listen"), "authz_listen", top.get("authz_listen"), used)
    if listen is not None:
        used = (*used, ("authz_listen", listen))
    prefix, grpc, tls = AuthzConfig().path_prefix, None, None
    node = top.get("authz")
    section = None if node is None else read_section(report, "authz", top.key_line("authz"), node, _AUTHZ)
    if section is not None:
        http_port = listen is not None or top.get("authz_listen") is not None
        if (prefix_node := section.get("path_prefix")) is not None:
            prefix = read_value(report, "authz.path_prefix", prefix_node, parse_path_prefix) or prefix
            if not http_port:
                report.warn(
                    section.key_line("path_prefix"), "authz.path_prefix: has no effect without authz_listen"
                )
        line = section.key_line("grpc_listen")
        grpc = _listen(report, line, "authz.grpc_listen", section.get("grpc_listen"), used)
        if grpc is not None and not all(importlib.util.find_spec(name) for name in _GRPC_MODULES):
            report.error(line, "authz.grpc_listen: needs the grpc extra (pip install 'authproxy[grpc]')")
        if (tls_node := section.get("tls")) is not None:
            line = section.key_line("tls")
            tls = read_listener_tls(report, "authz.tls", line, tls_node, os.path.dirname(report.file))
            if not http_port:
                report.warn(line, "authz.tls: has no effect without authz_listen (the gRPC port is plain)")
    return AuthzConfig(listen, prefix, grpc, tls) if len(report.errors) == errors else None


def _listen(
    report: Report, line: int, key: str, node: Node | None, used: tuple[tuple[str, Address], ...]
) -> Address | None:
    """The address under `key` when given, valid and not sharing a port; None otherwise (reported)."""
    if node is None:
        return None
    address = read_address(report, key, node)
    if address is None or not _port_free(report, line, key, address, used):
        return None
    return address


def _port_free(
    report: Report, line: int, key: str, mine: Address, used: tuple[tuple[str, Address], ...]
) -> bool:
    if mine.port == 0:
        return True  # port 0 binds a fresh port each time, so it never collides
    for other_key, other in used:
        if other.port != mine.port:
            continue
        if mine.host == other.host or mine.host in _WILDCARD or other.host in _WILDCARD:
            report.error(line, f"{key}: shares port {mine.port} with {other_key} ({other})")
            return False
    return True
