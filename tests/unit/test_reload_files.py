"""reload.py's pure parts: which files are watched, what counts as a change, and which settings a reload
cannot apply."""

from __future__ import annotations

import json
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from authproxy.config import load_text
from authproxy.serve.reload import fingerprint, watched_files
from tests.rigs.keys import new_rsa_key, public_jwk

SECRET = "0123456789abcdef0123456789abcdef"


HEAD = """\
upstream:
  url: http://127.0.0.1:7777
jwt:
  audience: api
"""


def test_watched_files_are_the_config_and_every_secret_file(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text(SECRET)
    keys = f"  algorithms: [HS256]\n  keys:\n    - secret: {SECRET}\n    - secret_file: secret\n"
    config = load_text(HEAD + keys + "    - secret_file: secret\n", str(tmp_path / "config.yaml"), {})
    assert watched_files(config) == (str(tmp_path / "config.yaml"), str(tmp_path / "secret"))


def test_watched_files_include_public_key_and_jwks_files(tmp_path: Path) -> None:
    key = new_rsa_key()
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "public.pem").write_bytes(pem)
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [public_jwk(key, "k1", alg="RS256")]}))
    keys = "  algorithms: [RS256]\n  keys:\n    - public_key_file: public.pem\n    - jwks_file: jwks.json\n"
    config = load_text(HEAD + keys, str(tmp_path / "config.yaml"), {})
    assert watched_files(config) == (
        str(tmp_path / "config.yaml"),
        str(tmp_path / "public.pem"),
        str(tmp_path / "jwks.json"),
    )


def test_fingerprint_changes_with_the_bytes_not_with_a_touch(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("a: 1\n")
    first = fingerprint([str(path)])
    os.utime(path, (1, 1))
    assert fingerprint([str(path)]) == first
    path.write_text("a: 2\n")  # same size, maybe the same mtime tick: still a change
    assert fingerprint([str(path)]) != first


def test_fingerprint_follows_a_swapped_symlink(tmp_path: Path) -> None:
    for version, body in (("v1", "a: 1\n"), ("v2", "a: 2\n")):
        (tmp_path / version).mkdir()
        (tmp_path / version / "config.yaml").write_text(body)
    (tmp_path / "..data").symlink_to("v1")
    (tmp_path / "config.yaml").symlink_to("..data/config.yaml")
    path = str(tmp_path / "config.yaml")
    first = fingerprint([path])
    (tmp_path / "..data_tmp").symlink_to("v2")
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
    assert fingerprint([path]) != first


def test_missing_file_is_a_state_of_its_own(tmp_path: Path) -> None:
    path = str(tmp_path / "absent.yaml")
    assert fingerprint([path]) == {path: None}
