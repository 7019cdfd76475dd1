"""`${VAR}` / `${VAR:-default}` substitution from the environment, in any scalar string."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from authproxy.config import load
from authproxy.config.model import SecretKey

if TYPE_CHECKING:
    from tests.rigs.configdir import ConfigDir

TEXT = """\
upstream:
  url: ${UPSTREAM:-http://127.0.0.1:7777}
  connect_timeout: ${CONNECT}
jwt:
  algorithms: [HS256]
  keys:
    - secret: ${SECRET}
  audience: ${AUD:-default-aud}
"""


def test_variables_and_defaults_are_substituted(cfg: ConfigDir) -> None:
    env = {"CONNECT": "7s", "SECRET": "s" * 40, "UPSTREAM": "http://10.0.0.1:9"}
    config = cfg.config(TEXT, env)
    assert config.upstream.url == "http://10.0.0.1:9"
    assert config.upstream.connect_timeout == 7.0
    assert config.jwt.keys == (SecretKey(b"s" * 40, 7, "secret"),)
    assert config.jwt.audience == ("default-aud",)


def test_empty_variable_takes_the_default(cfg: ConfigDir) -> None:
    config = cfg.config(TEXT, {"CONNECT": "1s", "SECRET": "s" * 40, "AUD": ""})
    assert config.jwt.audience == ("default-aud",)


def test_unset_variables_are_all_reported_at_their_lines(cfg: ConfigDir) -> None:
    assert cfg.errors(TEXT, {}) == [
        "config.yaml:3: environment variable CONNECT is not set (use ${CONNECT:-default} for a default)",
        "config.yaml:7: environment variable SECRET is not set (use ${SECRET:-default} for a default)",
    ]


def test_environ_is_the_default_source(cfg: ConfigDir, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONNECT", "2s")
    monkeypatch.setenv("SECRET", "e" * 40)
    monkeypatch.delenv("UPSTREAM", raising=False)
    monkeypatch.delenv("AUD", raising=False)
    cfg.write(TEXT)
    assert load("config.yaml").upstream.connect_timeout == 2.0


def test_unquoted_substitution_reads_as_the_value_would(cfg: ConfigDir) -> None:
    # 30 is read as a number of seconds, just as `connect_timeout: 30` would be.
    config = cfg.config(TEXT, {"CONNECT": "30", "SECRET": "s" * 40})
    assert config.upstream.connect_timeout == 30.0


def test_numeric_value_in_a_string_field_stays_text(cfg: ConfigDir) -> None:
    digits = "1234567890" * 4
    config = cfg.config(TEXT, {"CONNECT": "1s", "SECRET": digits, "AUD": "2024"})
    assert config.jwt.keys[0] == SecretKey(digits.encode(), 7, "secret")
    assert config.jwt.audience == ("2024",)


def test_substitution_inside_a_longer_string(cfg: ConfigDir, head: str) -> None:
    text = head + "policy:\n  admin_scope: ${APP}:admin\n"
    assert cfg.config(text, {"APP": "billing"}).policy.admin_scope == "billing:admin"


def test_double_dollar_escapes_a_literal_reference(cfg: ConfigDir, head: str) -> None:
    text = head + "policy:\n  admin_scope: $${NOT_A_VAR}\n"
    assert cfg.config(text, {}).policy.admin_scope == "${NOT_A_VAR}"


def test_unterminated_reference_is_refused(cfg: ConfigDir, head: str) -> None:
    assert cfg.errors(head + "policy:\n  admin_scope: ${APP\n") == [
        "config.yaml:9: unterminated '${': write '$${' for a literal '${'"
    ]


def test_malformed_reference_is_refused_without_echoing_it(cfg: ConfigDir) -> None:
    text = TEXT.replace("${SECRET}", "abc${9 hidden}def")
    errors = cfg.errors(text, {"CONNECT": "1s"})
    assert errors == ["config.yaml:7: invalid '${...}' reference: use ${NAME} or ${NAME:-default}"]


def test_substituted_secret_never_appears_in_a_message(cfg: ConfigDir) -> None:
    secret = "-----BEGIN PUBLIC KEY----- sensitive-material"
    errors = cfg.errors(TEXT, {"CONNECT": "1s", "SECRET": secret})
    assert errors == [
        "config.yaml:7: jwt.keys[0].secret: holds a PEM key, not an HMAC secret; use public_key_file"
    ]
    assert not any("sensitive" in e for e in errors)


def test_substitution_applies_to_keys(cfg: ConfigDir, head: str) -> None:
    text = head + 'policy:\n  routes:\n    "GET /${PREFIX}/items": [items:read]\n'
    assert cfg.config(text, {"PREFIX": "v2"}).policy.routes[0].key == "GET /v2/items"


def test_unset_variable_in_a_key_is_reported_once(cfg: ConfigDir, head: str) -> None:
    text = head + 'policy:\n  routes:\n    "GET /${PREFIX}": [x]\n'
    assert cfg.errors(text) == [
        "config.yaml:10: environment variable PREFIX is not set (use ${PREFIX:-default} for a default)"
    ]
