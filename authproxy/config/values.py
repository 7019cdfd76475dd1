"""Pure value parsers: text in, value out, or ValueError(message). Shared by the config builders (which
turn the message into a located Problem) and by command-line overrides.
"""

from __future__ import annotations

import ipaddress
import math
import re
from urllib.parse import SplitResult, urlsplit

from authproxy.config.model import Address
from authproxy.standards.http import HTTP_TOKEN

__all__ = [
    "ADDRESS_FORMS",
    "check_fetch_scheme",
    "check_fetch_url",
    "check_upstream_url",
    "parse_address",
    "parse_claim_path",
    "parse_duration",
    "parse_token_name",
    "split_http_url",
]

_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "": 1.0}
_DURATION = re.compile(r"([+-]?)(\d+(?:\.\d+)?)(ms|s|m|h|)")
_EVERY_INTERFACE = "0.0.0.0"  # noqa: S104 - bound only when the address says so (`:PORT`)
_LOOPBACK = "127.0.0.1"
ADDRESS_FORMS = "HOST:PORT, [IPv6]:PORT, :PORT (every interface) or PORT (127.0.0.1)"
_DURATION_HELP = "expected a duration such as 10s, 5m, 1h, 250ms or a number of seconds"


def parse_duration(value: str | int | float) -> float:
    """`10s`, `5m`, `1h`, `250ms`, `1.5s`, or a plain number of seconds -> seconds; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(_DURATION_HELP)
    if isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        if match is None:
            raise ValueError(f"{_DURATION_HELP}; got '{value}'")
        sign, number, unit = match.groups()
        seconds = float(sign + number) * _UNITS[unit]
    else:
        seconds = float(value)
    if not math.isfinite(seconds):
        raise ValueError(f"{_DURATION_HELP}; got a number that is not finite")
    if seconds < 0:
        raise ValueError("must not be negative")
    return seconds


def parse_address(text: str) -> Address:
    """`HOST:PORT` or `[IPv6]:PORT`, port 0..65535 (0: the OS picks); ValueError(message) otherwise.

    Two short forms: `:PORT` is every interface (0.0.0.0), as Go servers such as oauth2-proxy read
    `--http-address :4180`; a bare `PORT` is this machine only (127.0.0.1), the safe side of the two.
    """
    host, sep, port = text.rpartition(":")
    if not sep and text.isascii() and text.isdigit():
        host = _LOOPBACK
    elif not sep:
        raise ValueError(f"expected {ADDRESS_FORMS}; got '{text}'")
    elif not host:
        host = _EVERY_INTERFACE
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"'{host}' in brackets is not an IPv6 address") from None
    elif ":" in host:
        raise ValueError(f"an IPv6 address needs brackets, as in [::1]:8080; got '{text}'")
    elif _HOST.fullmatch(host) is None:
        raise ValueError(f"'{host}' is not a host name or IPv4 address")
    if not port.isascii() or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"the port must be a number from 0 to 65535; got '{port}'")
    return Address(host, int(port))


def check_upstream_url(url: str) -> None:
    """`http(s)://host[:port][/base-path]`, no credentials, query or fragment; ValueError(message) if not."""
    parts = split_http_url(url)
    if parts.query or "?" in url:
        raise ValueError("must not have a ?query: the request's own query is forwarded")


def split_http_url(url: str) -> SplitResult:
    """An absolute http(s) URL with a host and no credentials or fragment; ValueError(message) otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError("must name a host")
    if "@" in parts.netloc:
        raise ValueError("must not contain credentials (user:password@)")
    if parts.fragment or url.endswith("#"):
        raise ValueError("must not have a #fragment")
    try:
        parts.port  # noqa: B018 - urllib checks the port range only when it is read
    except ValueError:
        raise ValueError("has an invalid port") from None
    return parts


def check_fetch_url(url: str, *, allow_insecure_http: bool, issuer: bool) -> None:
    """A URL keys are fetched from: https, unless the host is loopback or insecure http is allowed."""
    parts = split_http_url(url)
    if issuer and (parts.query or "?" in url):
        raise ValueError("an issuer must not have a ?query")
    check_fetch_scheme(parts.scheme, parts.hostname or "", allow_insecure_http=allow_insecure_http)


def check_fetch_scheme(scheme: str, host: str, *, allow_insecure_http: bool) -> None:
    """The transport rule for key URLs, at load and for every URL met while fetching (discovered
    `jwks_uri`, redirects): https, or http to a loopback host or with allow_insecure_http; ValueError if not.
    """
    if scheme == "https" or (scheme == "http" and (allow_insecure_http or _is_loopback(host))):
        return
    raise ValueError(
        "must use https: keys fetched over http can be swapped in transit "
        "(http is allowed for loopback hosts, or with allow_insecure_http: true)"
    )


def _is_loopback(host: str) -> bool:
    # Exact names only: `localhost.` (trailing dot) is an absolute DNS name that a resolver may send
    # anywhere, so it is not taken for loopback.
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_token_name(name: str) -> str:
    """A header or cookie name: an RFC 9110 token."""
    if HTTP_TOKEN.fullmatch(name) is None:
        raise ValueError(f"'{name}' is not a valid name: use letters, digits and !#$%&'*+-.^_`|~")
    return name


def parse_claim_path(path: str) -> str:
    """A claim name, or a dotted path into nested objects (realm_access.roles)."""
    if any(not part or part != part.strip() for part in path.split(".")):
        raise ValueError(f"'{path}' is not a claim name or a dotted path such as realm_access.roles")
    return path
