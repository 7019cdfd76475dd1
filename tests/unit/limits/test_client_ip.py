"""`key: client_ip`: which address a request counts against, and the `trusted_proxies` setting."""

from __future__ import annotations

import ipaddress
import textwrap
from pathlib import Path

import pytest

from authproxy.limits.client import client_address
from authproxy.limits.plan import build_limits
from tests.rigs.configdir import ConfigDir

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        # an untrusted peer is the client, whatever it writes in X-Forwarded-For
        ("198.51.100.7", ["203.0.113.1"], "198.51.100.7"),
        ("198.51.100.7", [], "198.51.100.7"),
        # a trusted peer: the right-most address no trusted proxy added
        ("10.0.0.2", ["203.0.113.1"], "203.0.113.1"),
        ("10.0.0.2", ["1.1.1.1, 203.0.113.1, 10.0.0.9"], "203.0.113.1"),  # the left-most is the client's say
        ("10.0.0.2", ["1.1.1.1", "203.0.113.1, 10.0.0.9"], "203.0.113.1"),  # one list over two lines
        ("10.0.0.2", ["203.0.113.1, , 10.0.0.9"], "203.0.113.1"),  # empty elements are ignored
        ("10.0.0.2", [], "10.0.0.2"),  # nobody forwarded: the proxy itself is the client
        ("10.0.0.2", ["10.0.0.5, 10.0.0.9"], "10.0.0.5"),  # only proxies: the farthest one
        ("10.0.0.2", ["203.0.113.1, garbage, 10.0.0.9"], "10.0.0.9"),  # no address: the walk stops
        ("10.0.0.2", ["203.0.113.1:4711"], "10.0.0.2"),  # a port is not an address either
        ("fd00::1", ["2001:db8::5"], "2001:db8::5"),
        ("::ffff:198.51.100.7", [], "198.51.100.7"),  # a dual-stack socket's IPv4 client
        ("::ffff:10.0.0.2", ["203.0.113.1"], "203.0.113.1"),
        (None, ["203.0.113.1"], None),  # no peer (`authproxy explain`): no address to count
        ("", [], None),  # a Unix socket's peer
    ],
)
def test_the_client_is_the_peer_or_the_right_most_untrusted_forwarded_address(
    peer: str | None, forwarded_for: list[str], client: str | None
) -> None:
    assert client_address(peer, forwarded_for, PROXIES) == client


def test_without_trusted_proxies_forwarded_for_is_never_read() -> None:
    assert client_address("10.0.0.2", ["203.0.113.1"], ()) == "10.0.0.2"


POLICY = """\
policy:
  public: [/health, "GET /docs/**"]
  routes:
    "GET /items": [items:read]
rate_limits:
"""  # lines 8-12; the section's body starts on line 13


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ConfigDir:
    monkeypatch.chdir(tmp_path)
    return ConfigDir(tmp_path)


def _text(head: str, body: str) -> str:
    return head + POLICY + textwrap.indent(textwrap.dedent(body), "  ")


HEAD = """\
upstream:
  url: http://127.0.0.1:7777
jwt:
  algorithms: [HS256]
  keys:
    - secret: 0123456789abcdef0123456789abcdef
  audience: api
"""


def test_client_ip_limits_may_name_public_routes(cfg: ConfigDir) -> None:
    text = _text(
        HEAD,
        """\
        key: client_ip
        trusted_proxies: [10.0.0.0/8, "fd00::/8", 192.0.2.1]
        default: 100/min
        routes:
          /health: 10/s
          "GET /docs/**": 5/s
          "GET /items": 1/s
        """,
    )
    rl = cfg.config(text).rate_limits
    assert rl is not None
    assert rl.key == "client_ip"
    assert [str(n) for n in rl.trusted_proxies] == ["10.0.0.0/8", "fd00::/8", "192.0.2.1/32"]
    assert [(r.routes, r.public) for r in rl.rules] == [
        (("/health",), True),
        (("GET /docs/**",), True),
        (("GET /items",), False),
    ]


def test_bad_trusted_proxies_are_reported_each_at_its_line(cfg: ConfigDir) -> None:
    text = _text(
        HEAD,
        """\
        key: client_ip
        trusted_proxies:
          - 10.0.0.0/8
          - 10.0.0.1/8
          - not-a-network
          - 7
        default: 1/s
        """,
    )
    assert cfg.errors(text) == [
        "config.yaml:16: rate_limits.trusted_proxies[1]: not a CIDR or address"
        " (10.0.0.1/8 has host bits set)",
        "config.yaml:17: rate_limits.trusted_proxies[2]: not a CIDR or address ('not-a-network' does not"
        " appear to be an IPv4 or IPv6 network)",
        "config.yaml:18: rate_limits.trusted_proxies[3]: expected a CIDR such as 10.0.0.0/8 or an address,"
        " got an integer",
    ]
    assert cfg.errors(_text(HEAD, "key: client_ip\ntrusted_proxies: 10.0.0.0/8\ndefault: 1/s\n")) == [
        "config.yaml:14: rate_limits.trusted_proxies: expected a list, got a string"
    ]


def test_public_routes_and_trusted_proxies_need_a_client_ip_key(cfg: ConfigDir) -> None:
    assert cfg.errors(_text(HEAD, 'routes:\n  "/health": 1/s\n')) == [
        'config.yaml:14: rate_limits.routes["/health"]: a public route has no caller to limit'
        " (unless key: client_ip)"
    ]
    assert cfg.warnings(_text(HEAD, "trusted_proxies: [10.0.0.0/8]\ndefault: 1/s\n")) == [
        "config.yaml:13: rate_limits.trusted_proxies: has no effect without key: client_ip"
    ]


def test_the_default_never_counts_a_public_route(cfg: ConfigDir) -> None:
    text = _text(HEAD, "key: client_ip\ndefault: 100/min\nroutes:\n  /health: 10/s\n")
    limits = build_limits(cfg.config(text).rate_limits)
    assert [limit.name for limit in limits.for_route("/health", public=True)] == ["/health"]
    assert limits.for_route("GET /docs/**", public=True) == ()
    assert [limit.name for limit in limits.for_route("GET /items")] == ["default"]
