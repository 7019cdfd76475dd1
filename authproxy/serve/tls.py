"""A listener's TLS across reloads: every new handshake uses the context of the Runtime current then.

The listening socket keeps the context it was bound with; its SNI callback (called on every ClientHello,
with or without a server name) moves the connection to the latest context, so a renewed certificate, key
or client CA bundle (a Kubernetes Secret swap) is used from the next handshake on, and a connection
already open keeps the one it started with. Turning TLS on or off, or changing whether client certificates
are asked for, needs a restart: OpenSSL keeps the verify mode of the context a connection began with.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

from authproxy.config.model import ListenerTls

__all__ = ["follow_reloads", "tls_shape"]


def tls_shape(tls: ListenerTls | None) -> str:
    """What a reload cannot change about a listener's TLS, as shown in the "needs a restart" warning."""
    if tls is None:
        return "off"
    if tls.client_ca_file is None:
        return "on"
    return f"on, client certificate {tls.client_auth}"


def follow_reloads(current: Callable[[], ListenerTls | None]) -> ssl.SSLContext | None:
    """The context to bind a listener with (None: plain TCP); it hands each handshake `current()`'s."""
    running = current()
    if running is None:
        return None
    listening = running.context

    def latest(connection: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext) -> None:
        tls = current()
        if tls is not None and connection.context is not tls.context:
            connection.context = tls.context

    listening.sni_callback = latest
    return listening
