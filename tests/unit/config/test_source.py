"""config/source.py: YAML text -> located plain data; syntax, duplicates and non-plain data refused."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from authproxy.config import load
from authproxy.config.source import MapNode, Scalar, SeqNode, parse
from authproxy.errors import ConfigError

if TYPE_CHECKING:
    from tests.rigs.configdir import ConfigDir


def test_parse_locates_every_value_on_its_line() -> None:
    root, problems = parse("a: 1\nb:\n  - x\n  - y: true\n", "f.yaml", {})
    assert problems == []
    assert isinstance(root, MapNode)
    (a, one), (b, seq) = root.items
    assert (a.text, a.line, one) == ("a", 1, Scalar(1, "1", 1))
    assert b.line == 2
    assert isinstance(seq, SeqNode) and seq.line == 3
    assert seq.items[0] == Scalar("x", "x", 3)
    inner = seq.items[1]
    assert isinstance(inner, MapNode) and inner.items[0][1] == Scalar(True, "true", 4)


def test_parse_reads_scalars_by_yaml_rules() -> None:
    root, _ = parse("i: 3\nf: 1.5\nb: false\nn: ~\ns: '3'\n", "f.yaml", {})
    assert isinstance(root, MapNode)
    assert [v.value for _, v in root.items if isinstance(v, Scalar)] == [3, 1.5, False, None, "3"]


def test_empty_file_is_refused(cfg: ConfigDir) -> None:
    assert cfg.errors("") == ["config.yaml:1: the file is empty"]


def test_comment_only_file_is_refused(cfg: ConfigDir) -> None:
    assert cfg.errors("# nothing here\n\n") == ["config.yaml:1: the file is empty"]


def test_syntax_error_is_located(cfg: ConfigDir) -> None:
    assert cfg.errors("upstream:\n  url: [1, 2\njwt: 3\n") == [
        "config.yaml:3: invalid YAML: expected ',' or ']', but got ':' "
        "(while parsing a flow sequence at line 2)"
    ]


def test_tab_indentation_is_located(cfg: ConfigDir) -> None:
    assert cfg.errors("upstream:\n\turl: x\n") == [
        "config.yaml:2: invalid YAML: found character '\\t' that cannot start any token"
    ]


def test_second_document_is_refused(cfg: ConfigDir) -> None:
    assert cfg.errors("a: 1\n---\nb: 2\n") == [
        "config.yaml:2: invalid YAML: but found another document "
        "(expected a single document in the stream at line 1)"
    ]


def test_duplicate_keys_are_refused_at_the_second_key(cfg: ConfigDir, head: str) -> None:
    text = head + "logging:\n  level: info\n  format: json\n  level: debug\nlogging: {}\n"
    assert cfg.errors(text) == [
        "config.yaml:11: duplicate key 'level' (first at line 9)",
        "config.yaml:12: duplicate key 'logging' (first at line 8)",
    ]


def test_duplicate_route_keys_are_refused(cfg: ConfigDir, head: str) -> None:
    text = head + 'policy:\n  routes:\n    "GET /a": [x]\n    "GET /a": []\n'
    assert cfg.errors(text) == ["config.yaml:11: duplicate key 'GET /a' (first at line 10)"]


def test_root_that_is_not_a_map_is_refused(cfg: ConfigDir) -> None:
    assert cfg.errors("- upstream\n- jwt\n") == [
        "config.yaml:1: the configuration: expected a map, got a list"
    ]


@pytest.mark.parametrize(
    ("value", "tag"),
    [
        ("!!python/object:os.system {}", "tag:yaml.org,2002:python/object:os.system"),
        ("!!binary aGVsbG8=", "tag:yaml.org,2002:binary"),
        ("!!set {a, b}", "tag:yaml.org,2002:set"),
        ("!!omap [a: 1]", "tag:yaml.org,2002:omap"),
        ("!custom x", "!custom"),
        ('!!timestamp "2024-01-01"', "tag:yaml.org,2002:timestamp"),
    ],
)
def test_non_plain_tag_is_refused(cfg: ConfigDir, head: str, value: str, tag: str) -> None:
    assert cfg.errors(head + f"logging: {value}\n") == [
        f"config.yaml:8: tag '{tag}' is not allowed: only plain maps, lists and scalars"
    ]


def test_explicit_plain_tag_is_honoured(cfg: ConfigDir, head: str) -> None:
    config = cfg.config(head + "logging:\n  level: !!str info\n")
    assert config.logging.level == "info"


def test_bad_explicit_tag_value_is_refused(cfg: ConfigDir, head: str) -> None:
    errors = cfg.errors(head + "upstream2: !!int abc\n")
    assert errors[0].startswith("config.yaml:8: cannot read the value as int: ")


def test_unquoted_date_stays_text(cfg: ConfigDir) -> None:
    text = """\
        upstream:
          url: http://127.0.0.1:7777
        jwt:
          algorithms: [HS256]
          keys:
            - secret: 0123456789abcdef0123456789abcdef
              kid: 2024-01-01
          audience: api
        """
    key = cfg.config(text).jwt.keys[0]
    assert key.kid == "2024-01-01"  # type: ignore[union-attr]


def test_merge_key_is_refused(cfg: ConfigDir, head: str) -> None:
    text = head + "base: &b {level: info}\nlogging:\n  <<: *b\n"
    errors = cfg.errors(text)
    assert "config.yaml:10: merge keys ('<<') are not supported: write the keys out" in errors


def test_recursive_alias_is_refused(cfg: ConfigDir, head: str) -> None:
    text = head + "policy:\n  public: &loop [/a, *loop]\n"
    assert cfg.errors(text) == ["config.yaml:9: recursive alias: the value contains itself"]


def test_alias_to_plain_data_is_shared(cfg: ConfigDir, head: str) -> None:
    text = head + 'policy:\n  routes:\n    "GET /a": &read [items:read]\n    "GET /b": *read\n'
    routes = cfg.config(text).policy.routes
    assert [(r.key, r.scopes, r.line) for r in routes] == [
        ("GET /a", ("items:read",), 10),
        ("GET /b", ("items:read",), 11),
    ]


def test_non_scalar_key_is_refused(cfg: ConfigDir, head: str) -> None:
    assert cfg.errors(head + "? [a, b]\n: 1\n") == [
        "config.yaml:8: a key must be a plain scalar, not a map or list"
    ]


def test_missing_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as caught:
        load(path, {})
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:1: cannot read the configuration: No such file or directory"
    ]


def test_non_utf8_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"upstream:\n  url: caf\xe9\n")
    with pytest.raises(ConfigError) as caught:
        load(path, {})
    assert [str(p) for p in caught.value.problems] == [f"{path}:2: the file is not UTF-8 text"]


def test_control_character_is_located(tmp_path: Path) -> None:
    path = tmp_path / "ctl.yaml"
    path.write_text("upstream:\n  url: a\x07b\n")
    with pytest.raises(ConfigError) as caught:
        load(path, {})
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:2: invalid YAML: special characters are not allowed"
    ]
