"""`authz_listen` and `authz:`: the decision port's address and the Envoy path prefix, checked at load."""

from __future__ import annotations

import pytest

from authproxy.config.authz import parse_path_prefix
from authproxy.config.model import Address, AuthzConfig
from tests.rigs.configdir import ConfigDir


def test_no_decision_port_by_default(cfg: ConfigDir, head: str) -> None:
    assert cfg.config(head).authz == AuthzConfig(None, "/envoy", None)
    assert not cfg.config(head).authz.enabled


def test_authz_listen_and_path_prefix(cfg: ConfigDir, head: str) -> None:
    config = cfg.config(head + "authz_listen: 127.0.0.1:9191\nauthz:\n  path_prefix: /ext/authz\n")
    assert config.authz == AuthzConfig(Address("127.0.0.1", 9191), "/ext/authz")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "authz_listen: 127.0.0.1:8080\n",
            "config.yaml:8: authz_listen: shares port 8080 with listen (0.0.0.0:8080)",
        ),
        (
            "authz_listen: 0.0.0.0:9901\n",
            "config.yaml:8: authz_listen: shares port 9901 with admin_listen (127.0.0.1:9901)",
        ),
        (
            "authz_listen: nowhere\n",
            "config.yaml:8: authz_listen: expected HOST:PORT, [IPv6]:PORT, :PORT (every interface) or PORT "
            "(127.0.0.1); got 'nowhere'",
        ),
        (
            "authz_listen: 127.0.0.1:0\nauthz:\n  path_prefix: /\n",
            "config.yaml:10: authz.path_prefix: must start with '/' and name a segment (such as /envoy); "
            "got '/'",
        ),
        (
            "authz_listen: 127.0.0.1:0\nauthz:\n  prefix: /x\n",
            "config.yaml:10: unknown key 'prefix' in authz (did you mean 'path_prefix'?)",
        ),
    ],
)
def test_bad_authz_settings_are_refused_with_their_line(
    cfg: ConfigDir, head: str, text: str, message: str
) -> None:
    assert cfg.errors(head + text) == [message]


def test_grpc_listen_alone_opens_only_the_grpc_service(cfg: ConfigDir, head: str) -> None:
    config = cfg.config(head + "authz:\n  grpc_listen: 127.0.0.1:9192\n")
    assert config.authz == AuthzConfig(None, "/envoy", Address("127.0.0.1", 9192))
    assert config.authz.enabled


def test_grpc_listen_must_not_share_the_decision_port(cfg: ConfigDir, head: str) -> None:
    text = head + "authz_listen: 127.0.0.1:9191\nauthz:\n  grpc_listen: 0.0.0.0:9191\n"
    assert cfg.errors(text) == [
        "config.yaml:10: authz.grpc_listen: shares port 9191 with authz_listen (127.0.0.1:9191)"
    ]


def test_authz_section_without_a_decision_port_warns(cfg: ConfigDir, head: str) -> None:
    assert "config.yaml:9: authz.path_prefix: has no effect without authz_listen" in cfg.warnings(
        head + "authz:\n  path_prefix: /check\n"
    )


@pytest.mark.parametrize(
    ("prefix", "fragment"),
    [
        ("envoy", "must start with '/'"),
        ("/envoy/", "no trailing '/'"),
        ("/a//b", "no '//'"),
        ("/a/../b", "no '//'"),
        ("/a%2Fb", "letters, digits"),
        ("/nginx", "overlap the decision port's /nginx endpoint"),
        ("/nginx/x", "overlap the decision port's /nginx endpoint"),
        ("/forward-auth", "overlap the decision port's /forward-auth endpoint"),
    ],
)
def test_path_prefix_is_plain_and_never_overlaps_a_fixed_endpoint(prefix: str, fragment: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_path_prefix(prefix)
    assert fragment in str(caught.value)


@pytest.mark.parametrize("prefix", ["/envoy", "/ext_authz/check", "/nginxx", "/v1.authz"])
def test_plain_prefixes_are_accepted(prefix: str) -> None:
    assert parse_path_prefix(prefix) == prefix


def test_every_authz_problem_is_reported_at_once(cfg: ConfigDir, head: str) -> None:
    text = (
        head + "authz_listen: 127.0.0.1:9901\nauthz:\n  path_prefix: /nginx\n  grpc_listen: 127.0.0.1:9901\n"
    )
    assert cfg.errors(text) == [
        "config.yaml:8: authz_listen: shares port 9901 with admin_listen (127.0.0.1:9901)",
        "config.yaml:10: authz.path_prefix: must not overlap the decision port's /nginx endpoint; "
        "got '/nginx'",
        "config.yaml:11: authz.grpc_listen: shares port 9901 with admin_listen (127.0.0.1:9901)",
    ]
