"""The client address a `key: client_ip` limit counts: the TCP peer, or, when the peer is a trusted proxy,
the right-most address of `X-Forwarded-For` that is not a trusted proxy.

Each proxy appends the address it received the request from, so the list reads left to right from the
client towards us; only the entries our own trusted proxies appended can be believed. Walking from the
right and stopping at the first untrusted address finds the nearest hop no trusted proxy vouches for; the
left-most entry is whatever the client chose to send, and never used. An entry that is not an address
cannot have come from a trusted proxy, so the walk stops there and keeps the last trusted hop.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

__all__ = ["IpAddress", "IpNetwork", "client_address"]

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(text: str) -> IpAddress | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # a dual-stack socket's ::ffff:a.b.c.d is the IPv4 client a.b.c.d
    return address


def _trusted(address: IpAddress, proxies: Sequence[IpNetwork]) -> bool:
    return any(address in network for network in proxies)


def client_address(
    peer: str | None, forwarded_for: Iterable[str], proxies: Sequence[IpNetwork]
) -> str | None:
    """The client's address as text (None when the peer is unknown, e.g. `authproxy explain`).

    `forwarded_for`: every `X-Forwarded-For` field line, in order (a list split over lines is one list).
    """
    hop = _address(peer) if peer is not None else None
    if hop is None:
        return None
    if not proxies or not _trusted(hop, proxies):
        return str(hop)
    # Empty list elements ("a, , b") are ignored, as RFC 9110 5.6.1 tells a recipient to.
    entries = [entry for line in forwarded_for for entry in line.split(",") if entry.strip()]
    for entry in reversed(entries):
        address = _address(entry)
        if address is None:
            break
        hop = address
        if not _trusted(hop, proxies):
            break
    return str(hop)
