"""The listen addresses' short forms, the command-line overrides (`serve --listen/--upstream`) checked with
the file, and the two modes: an upstream means a proxied port; no upstream, the decision port alone."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from authproxy.config import Overrides, load_with_warnings
from authproxy.config.model import Address
from authproxy.config.values import parse_address
from authproxy.errors import ConfigError

if TYPE_CHECKING:
    from tests.rigs.configdir import ConfigDir

JWT = "jwt:\n  algorithms: [HS256]\n  keys: [{secret: 0123456789abcdef0123456789abcdef}]\n  audience: api\n"
UPSTREAM = "upstream: {url: http://127.0.0.1:7777}\n"
_MISSING = (
    "config.yaml:1: missing required key 'upstream' (the URL requests are forwarded to; `serve --upstream "
    "URL` sets it too; a config with authz_listen and no upstream runs the decision port alone)"
)


def _errors(cfg: ConfigDir, text: str, overrides: Overrides) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_with_warnings(cfg.write(text), {}, overrides=overrides)
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(
    ("text", "address"),
    [
        (":8080", Address("0.0.0.0", 8080)),  # every interface, as oauth2-proxy's --http-address :4180
        ("8080", Address("127.0.0.1", 8080)),  # a bare port: this machine only
        ("0", Address("127.0.0.1", 0)),
        (":0", Address("0.0.0.0", 0)),
    ],
)
def test_short_address_forms(text: str, address: Address) -> None:
    assert parse_address(text) == address


def test_short_forms_in_the_file_and_an_unquoted_port(cfg: ConfigDir) -> None:
    config = cfg.config(f'listen: ":8080"\nadmin_listen: 9901\n{UPSTREAM}{JWT}')
    assert config.listen == Address("0.0.0.0", 8080)
    assert config.admin_listen == Address("127.0.0.1", 9901)


def test_upstream_flag_stands_in_for_a_missing_upstream(cfg: ConfigDir) -> None:
    config, _ = load_with_warnings(cfg.write(JWT), {}, overrides=Overrides(upstream="http://10.0.0.1:7777"))
    assert config.upstream.url == "http://10.0.0.1:7777"
    assert config.listen == Address("0.0.0.0", 8080)


def test_upstream_flag_stands_in_for_a_missing_url(cfg: ConfigDir) -> None:
    text = f"upstream: {{read_timeout: 1h}}\n{JWT}"
    config, _ = load_with_warnings(cfg.write(text), {}, overrides=Overrides(upstream="https://up.internal"))
    assert (config.upstream.url, config.upstream.read_timeout) == ("https://up.internal", 3600.0)


def test_flags_replace_the_file_values(cfg: ConfigDir) -> None:
    overrides = Overrides(listen=":9000", upstream="http://10.0.0.2")
    config, _ = load_with_warnings(
        cfg.write(f"listen: 127.0.0.1:1\n{UPSTREAM}{JWT}"), {}, overrides=overrides
    )
    assert (config.listen, config.upstream.url) == (Address("0.0.0.0", 9000), "http://10.0.0.2")


def test_bad_flags_read_as_the_option_then_the_message(cfg: ConfigDir) -> None:
    overrides = Overrides(listen="nowhere:http", upstream="ftp://x")
    assert _errors(cfg, f"{UPSTREAM}{JWT}", overrides) == [
        "--listen: the port must be a number from 0 to 65535; got 'http'",
        "--upstream: must be an http:// or https:// URL",
    ]


def test_no_upstream_and_no_decision_port_is_an_error(cfg: ConfigDir) -> None:
    assert cfg.errors(JWT) == [_MISSING]


def test_no_upstream_runs_the_decision_port_alone(cfg: ConfigDir) -> None:
    config = cfg.config(f"authz_listen: 127.0.0.1:9191\n{JWT}")
    assert config.listen is None
    assert config.authz.listen == Address("127.0.0.1", 9191)
    grpc_only = cfg.config(f"authz: {{grpc_listen: 127.0.0.1:9192}}\n{JWT}")
    assert grpc_only.listen is None and grpc_only.authz.grpc_listen == Address("127.0.0.1", 9192)


def test_decision_port_alone_may_share_the_default_proxied_port(cfg: ConfigDir) -> None:
    # No proxied port is opened, so 8080 (the default `listen`) is free for the decision port.
    assert cfg.config(f"authz_listen: 0.0.0.0:8080\n{JWT}").authz.listen == Address("0.0.0.0", 8080)


def test_a_proxied_port_without_upstream_is_refused(cfg: ConfigDir) -> None:
    text = f"authz_listen: 127.0.0.1:9191\n{JWT}listen: 127.0.0.1:8080\n"
    message = "the proxied port forwards to upstream, which is not set (without it only authz_listen runs)"
    assert _errors(cfg, text, Overrides(listen="8081")) == [
        f"--listen: {message}",
        f"config.yaml:6: listen: {message}",
    ]
