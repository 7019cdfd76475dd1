"""config/build.py: sections -> model objects; types, unknown and missing keys, addresses, URLs,
identity headers, logging, and warnings (the jwt section: test_build_jwt.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from authproxy.config import load_text, load_text_with_warnings
from authproxy.config.model import (
    Address,
    ClaimPaths,
    Config,
    ForwardConfig,
    JwtConfig,
    LoggingConfig,
    PolicyConfig,
    PublicRule,
    RouteRule,
    SecretKey,
    UpstreamConfig,
)
from authproxy.config.values import check_upstream_url, parse_address
from authproxy.errors import ConfigError

if TYPE_CHECKING:
    from tests.rigs.configdir import ConfigDir

SECRET = "0123456789abcdef0123456789abcdef"

FULL = f"""\
listen: 0.0.0.0:8080
admin_listen: "[::1]:9901"
upstream:
  url: https://api.internal:8443/base
  connect_timeout: 2s
  read_timeout: 5m
jwt:
  algorithms: [HS256, HS512]
  keys:
    - secret: {SECRET}
      kid: k1
  audience: [api, web]
  issuer: https://idp.example.com
  leeway: 10s
  sources: [cookie, header]
  header: X-Token
  cookie: session
  claims:
    user_id: uid
    scopes: realm_access.roles
policy:
  admin_scope: app:admin
  unmapped: deny
  public:
    - GET /health
    - /docs
  routes:
    "GET /items": [items:read]
    "POST /items/{{id}}": [items:write, audit]
    "GET /me": []
forward:
  identity_headers:
    scopes: X-Auth-Scopes
    user_id: X-Auth-User
  strip_authorization: true
logging:
  level: debug
  format: console
"""


def test_full_config_builds_every_field(cfg: ConfigDir) -> None:
    config, warnings = cfg.load(FULL)
    assert warnings == []
    assert config == Config(
        path="config.yaml",
        listen=Address("0.0.0.0", 8080),
        admin_listen=Address("::1", 9901),
        upstream=UpstreamConfig("https://api.internal:8443/base", 2.0, 300.0),
        jwt=JwtConfig(
            algorithms=("HS256", "HS512"),
            keys=(SecretKey(SECRET.encode(), 10, "secret", "k1"),),
            audience=("api", "web"),
            issuer="https://idp.example.com",
            leeway=10.0,
            sources=("cookie", "header"),
            header="X-Token",
            cookie="session",
            claims=ClaimPaths(user_id="uid", session_id="session_id", scopes="realm_access.roles"),
        ),
        policy=PolicyConfig(
            admin_scope="app:admin",
            unmapped="deny",
            public=(PublicRule("GET /health", "config.yaml", 25), PublicRule("/docs", "config.yaml", 26)),
            routes=(
                RouteRule("GET /items", ("items:read",), "config.yaml", 28),
                RouteRule("POST /items/{id}", ("items:write", "audit"), "config.yaml", 29),
                RouteRule("GET /me", (), "config.yaml", 30),
            ),
        ),
        forward=ForwardConfig((("scopes", "X-Auth-Scopes"), ("user_id", "X-Auth-User")), True),
        logging=LoggingConfig("debug", "console"),
    )


def test_minimal_config_takes_the_defaults(cfg: ConfigDir, head: str) -> None:
    config = cfg.config(head)
    assert config == Config(
        path="config.yaml",
        upstream=UpstreamConfig("http://127.0.0.1:7777"),
        jwt=JwtConfig(("HS256",), (SecretKey(SECRET.encode(), 6, "secret"),), audience=("api",)),
    )


def test_load_text_resolves_nothing_from_disk_for_inline_keys(head: str) -> None:
    assert load_text(head, "inline.yaml", {}).path == "inline.yaml"


def test_missing_sections_are_required(cfg: ConfigDir) -> None:
    assert cfg.errors("logging: {level: info}\n") == [
        "config.yaml:1: missing required key 'jwt'",
        "config.yaml:1: missing required key 'upstream' (the URL requests are forwarded to; "
        "`serve --upstream URL` sets it too; a config with authz_listen and no upstream runs the decision "
        "port alone)",
    ]


def test_missing_required_keys_are_reported_at_their_section(cfg: ConfigDir) -> None:
    text = "upstream:\n  connect_timeout: 1s\njwt:\n  audience: api\n"
    assert cfg.errors(text) == [
        "config.yaml:1: missing required key 'url' in upstream",
        "config.yaml:3: missing required key 'algorithms' in jwt",
        "config.yaml:3: missing required key 'keys' in jwt",
    ]


def test_unknown_keys_are_refused_with_a_hint(cfg: ConfigDir, head: str) -> None:
    text = head.replace("  audience: api\n", "  audiences: api\n") + "loging: {}\nlogging:\n  colour: true\n"
    assert cfg.errors(text) == [
        "config.yaml:7: unknown key 'audiences' in jwt (did you mean 'audience'?)",
        "config.yaml:8: unknown key 'loging' (did you mean 'logging'?)",
        "config.yaml:10: unknown key 'colour' in logging",
    ]


def test_wrong_types_are_refused(cfg: ConfigDir) -> None:
    text = """\
        upstream: http://127.0.0.1:7777
        jwt:
          algorithms: HS256
          keys: {secret: x}
          issuer: 42
          sources: header
        forward:
          strip_authorization: "yes"
          identity_headers: [X-User]
        policy: []
        """
    assert cfg.errors(text) == [
        "config.yaml:1: upstream: expected a map, got a string",
        "config.yaml:3: jwt.algorithms: expected a list, got a string",
        "config.yaml:4: jwt.keys: expected a list, got a map",
        "config.yaml:5: jwt.issuer: expected a string, got an integer (quote it to make it text)",
        "config.yaml:6: jwt.sources: expected a list, got a string",
        "config.yaml:8: forward.strip_authorization: expected true or false, got a string",
        "config.yaml:9: forward.identity_headers: expected a map, got a list",
        "config.yaml:10: policy: expected a map, got a list",
    ]


def test_null_section_is_refused(cfg: ConfigDir, head: str) -> None:
    assert cfg.errors(head + "logging:\n") == ["config.yaml:8: logging: expected a map, got nothing (null)"]


def test_several_problems_are_all_reported(cfg: ConfigDir) -> None:
    text = """\
        listen: nowhere
        upstream:
          url: ftp://files
        jwt:
          algorithms: [none]
          keys: []
          audience: []
        logging:
          level: loud
        """
    assert cfg.errors(text) == [
        "config.yaml:1: listen: expected HOST:PORT, [IPv6]:PORT, :PORT (every interface) or PORT "
        "(127.0.0.1); got 'nowhere'",
        "config.yaml:3: upstream.url: must be an http:// or https:// URL",
        "config.yaml:5: jwt.algorithms[0]: 'none' is refused: it would accept unsigned tokens",
        "config.yaml:6: jwt.keys: must not be an empty list",
        "config.yaml:7: jwt.audience: must not be an empty list",
        "config.yaml:9: logging.level: must be one of debug, info, warning, error; got 'loud'",
    ]


# --- addresses -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("0.0.0.0:8080", Address("0.0.0.0", 8080)),
        ("127.0.0.1:0", Address("127.0.0.1", 0)),
        ("localhost:65535", Address("localhost", 65535)),
        ("[::]:443", Address("::", 443)),
        ("[fe80::1]:9", Address("fe80::1", 9)),
        ("proxy.svc.cluster.local:80", Address("proxy.svc.cluster.local", 80)),
    ],
)
def test_address_is_parsed(text: str, address: Address) -> None:
    assert parse_address(text) == address


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "nowhere",
            "expected HOST:PORT, [IPv6]:PORT, :PORT (every interface) or PORT (127.0.0.1); got 'nowhere'",
        ),
        ("", "expected HOST:PORT, [IPv6]:PORT, :PORT (every interface) or PORT (127.0.0.1); got ''"),
        (":", "the port must be a number from 0 to 65535; got ''"),
        ("99999", "the port must be a number from 0 to 65535; got '99999'"),
        ("::1:8080", "an IPv6 address needs brackets, as in [::1]:8080; got '::1:8080'"),
        ("[nope]:80", "'nope' in brackets is not an IPv6 address"),
        ("bad host:80", "'bad host' is not a host name or IPv4 address"),
        ("h:65536", "the port must be a number from 0 to 65535; got '65536'"),
        ("h:-1", "the port must be a number from 0 to 65535; got '-1'"),
        ("h:", "the port must be a number from 0 to 65535; got ''"),
        ("h:\uff18\uff10", "the port must be a number from 0 to 65535; got '\uff18\uff10'"),  # fullwidth 80
    ],
)
def test_bad_address_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_address(text)
    assert str(caught.value) == message


def test_listen_and_admin_listen_must_differ(cfg: ConfigDir, head: str) -> None:
    text = head + "listen: 127.0.0.1:9000\nadmin_listen: 127.0.0.1:9000\n"
    assert cfg.errors(text) == [
        "config.yaml:9: admin_listen: listen (127.0.0.1:9000) and admin_listen (127.0.0.1:9000) share a port"
    ]


def test_wildcard_listen_collides_with_the_default_admin_port(cfg: ConfigDir, head: str) -> None:
    assert cfg.errors(head + "listen: 0.0.0.0:9901\n") == [
        "config.yaml:8: listen: listen (0.0.0.0:9901) and admin_listen (127.0.0.1:9901) share a port"
    ]


def test_port_zero_twice_is_allowed(cfg: ConfigDir, head: str) -> None:
    config = cfg.config(head + "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\n")
    assert config.listen == config.admin_listen == Address("127.0.0.1", 0)


def test_same_port_on_distinct_hosts_is_allowed(cfg: ConfigDir, head: str) -> None:
    config = cfg.config(head + "listen: 10.0.0.5:8080\nadmin_listen: 127.0.0.1:8080\n")
    assert (config.listen, config.admin_listen) == (Address("10.0.0.5", 8080), Address("127.0.0.1", 8080))


# --- upstream URL ----------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["http://127.0.0.1:7777", "https://api.example.com/base/", "http://[::1]:80"])
def test_upstream_url_is_accepted(cfg: ConfigDir, head: str, url: str) -> None:
    config = cfg.config(head.replace("http://127.0.0.1:7777", url))
    assert config.upstream.url == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://host", "must be an http:// or https:// URL"),
        ("127.0.0.1:7777", "must be an http:// or https:// URL"),
        ("http:///path", "must name a host"),
        ("http://user:pw@host", "must not contain credentials (user:password@)"),
        ("http://host/#frag", "must not have a #fragment"),
        ("http://host/#", "must not have a #fragment"),
        ("http://host/?a=1", "must not have a ?query: the request's own query is forwarded"),
        ("http://host/?", "must not have a ?query: the request's own query is forwarded"),
        ("http://host:99999", "has an invalid port"),
    ],
)
def test_bad_upstream_url_is_refused(url: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        check_upstream_url(url)
    assert str(caught.value) == message


def test_bad_upstream_url_is_located(cfg: ConfigDir) -> None:
    text = "upstream:\n  url: http://host?x=1\njwt: {algorithms: [HS256], keys: [{secret: " + SECRET + "}]}\n"
    assert cfg.errors(text) == [
        "config.yaml:2: upstream.url: must not have a ?query: the request's own query is forwarded"
    ]


# --- forward and logging ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Connection", "'Connection' is a hop-by-hop header and never reaches the upstream"),
        ("transfer_encoding", "'transfer_encoding' is a hop-by-hop header and never reaches the upstream"),
        ("Host", "'Host' is reserved: the connection or authproxy sets it"),
        ("X-Forwarded-For", "'X-Forwarded-For' is reserved: the connection or authproxy sets it"),
        ("Content-Length", "'Content-Length' is reserved: the connection or authproxy sets it"),
        ("authorization", "'authorization' is the header the token is read from (jwt.header)"),
        ("X User", "'X User' is not a valid name: use letters, digits and !#$%&'*+-.^_`|~"),
    ],
)
def test_unsafe_identity_header_is_refused(cfg: ConfigDir, head: str, header: str, message: str) -> None:
    text = head + f"forward:\n  identity_headers:\n    user_id: {header}\n"
    assert cfg.errors(text) == [f"config.yaml:10: forward.identity_headers.user_id: {message}"]


DEFAULT_IDENTITY = (
    ("user_id", "X-Auth-User-Id"),
    ("session_id", "X-Auth-Session-Id"),
    ("scopes", "X-Auth-Scopes"),
)


@pytest.mark.parametrize("forward", ["", "forward:\n  strip_authorization: true\n"])
def test_identity_headers_are_on_by_default(cfg: ConfigDir, head: str, forward: str) -> None:
    assert cfg.config(head + forward).forward.identity_headers == DEFAULT_IDENTITY


def test_identity_headers_are_turned_off_by_an_empty_map(cfg: ConfigDir, head: str) -> None:
    assert cfg.config(head + "forward:\n  identity_headers: {}\n").forward.identity_headers == ()


def test_identity_headers_that_fold_together_are_refused(cfg: ConfigDir, head: str) -> None:
    text = head + "forward:\n  identity_headers:\n    user_id: X-Auth-User\n    scopes: x_auth_user\n"
    assert cfg.errors(text) == [
        "config.yaml:11: forward.identity_headers.scopes: 'x_auth_user' is already used for user_id "
        "(names compare case-insensitively, '_' as '-')"
    ]


def test_identity_header_for_an_unknown_field_is_refused(cfg: ConfigDir, head: str) -> None:
    text = head + "forward:\n  identity_headers:\n    email: X-Email\n"
    assert cfg.errors(text) == ["config.yaml:10: unknown key 'email' in forward.identity_headers"]


def test_identity_header_may_not_shadow_a_custom_token_header(cfg: ConfigDir, head: str) -> None:
    text = head + "  header: X-Token\nforward:\n  identity_headers:\n    user_id: x_token\n"
    assert cfg.errors(text) == [
        "config.yaml:11: forward.identity_headers.user_id: 'x_token' is the header the token is read from "
        "(jwt.header)"
    ]


def test_bad_logging_format_is_refused(cfg: ConfigDir, head: str) -> None:
    assert cfg.errors(head + "logging:\n  format: xml\n") == [
        "config.yaml:9: logging.format: must be one of json, console; got 'xml'"
    ]


def test_load_text_reports_problems_under_the_given_path() -> None:
    with pytest.raises(ConfigError) as caught:
        load_text("upstream: {}\n", "virtual.yaml", {})
    assert [str(p) for p in caught.value.problems] == [
        "virtual.yaml:1: missing required key 'jwt'",
        "virtual.yaml:1: missing required key 'url' in upstream",
    ]


def test_warnings_come_back_sorted(head: str) -> None:
    text = (
        head.replace("  audience: api\n", "").replace(SECRET, "short")
        + "policy:\n  unmapped: authenticated\n"
    )
    _, warnings = load_text_with_warnings(text, "w.yaml", {})
    assert [str(w) for w in warnings] == [
        "w.yaml:3: jwt.audience is not set, so a token's aud is not checked",
        "w.yaml:6: jwt.keys[0]: the secret is shorter than 32 bytes, too weak for HS256",
        "w.yaml:8: policy.unmapped: authenticated lets any valid token reach routes no rule names",
    ]
