"""jwt.keys: secrets, key files read at load (real PEMs), JWKS files, remote sources, and the rules that
tie algorithms to keys (RS/HS confusion, keys no configured algorithm can use)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from authproxy.config import load
from authproxy.config.model import JwksFile, JwksUrl, OidcIssuer, PublicKeyFile, SecretKey
from authproxy.errors import ConfigError

if TYPE_CHECKING:
    from tests.rigs.configdir import ConfigDir, KeyFiles

SECRET = "0123456789abcdef0123456789abcdef"


def jwt(algorithms: str, keys: str) -> str:
    """A config whose first key item is on line 6."""
    items = "".join(f"    {line}\n" for line in keys.strip("\n").split("\n"))
    head = f"upstream: {{url: http://127.0.0.1:7777}}\njwt:\n  algorithms: [{algorithms}]\n  audience: api\n"
    return f"{head}  keys:\n{items}"


@pytest.fixture
def keys_here(cfg: ConfigDir, key_files: KeyFiles) -> ConfigDir:
    key_files.copy_to(cfg.path, *(p.name for p in key_files.dir.iterdir()))
    return cfg


# --- secrets ---------------------------------------------------------------------------------


def test_inline_secret_with_kid(cfg: ConfigDir) -> None:
    config = cfg.config(jwt("HS256", f"- secret: {SECRET}\n  kid: current"))
    assert config.jwt.keys == (SecretKey(SECRET.encode(), 6, "secret", "current"),)


def test_empty_secret_is_refused(cfg: ConfigDir) -> None:
    assert cfg.errors(jwt("HS256", "- secret: ''")) == [
        "config.yaml:6: jwt.keys[0].secret: must not be empty"
    ]


def test_short_secret_is_a_warning(cfg: ConfigDir) -> None:
    warnings = cfg.warnings(jwt("HS256", "- secret: 31-bytes-is-one-too-few-for-it"))
    assert warnings == ["config.yaml:6: jwt.keys[0]: the secret is shorter than 32 bytes, too weak for HS256"]


def test_secret_file_is_read_relative_to_the_config_directory(cfg: ConfigDir) -> None:
    (cfg.path / "conf").mkdir()
    (cfg.path / "conf" / "jwt-secret").write_bytes(SECRET.encode() + b"\n")
    cfg.write(jwt("HS256", "- secret_file: jwt-secret\n  kid: file"), "conf/config.yaml")

    config = load("conf/config.yaml", {})
    assert config.jwt.keys == (SecretKey(SECRET.encode(), 6, "conf/jwt-secret", "file"),)


@pytest.mark.parametrize(
    ("content", "secret"),
    [
        (SECRET + "\r\n", SECRET),
        (SECRET + "\n\n", SECRET + "\n"),  # one newline only: the rest is the secret's own
        (SECRET, SECRET),
    ],
)
def test_secret_file_loses_one_trailing_newline(cfg: ConfigDir, content: str, secret: str) -> None:
    (cfg.path / "s").write_text(content, newline="")
    key = cfg.config(jwt("HS256", "- secret_file: s")).jwt.keys[0]
    assert isinstance(key, SecretKey) and key.secret == secret.encode()


def test_absolute_secret_file_path_is_kept(cfg: ConfigDir) -> None:
    path = cfg.path / "abs-secret"
    path.write_text(SECRET)
    key = cfg.config(jwt("HS256", f"- secret_file: {path}")).jwt.keys[0]
    assert isinstance(key, SecretKey) and key.origin == str(path)


def test_empty_secret_file_is_refused(cfg: ConfigDir) -> None:
    (cfg.path / "empty").write_text("\n")
    assert cfg.errors(jwt("HS256", "- secret_file: empty")) == [
        "config.yaml:6: jwt.keys[0].secret_file: empty is empty"
    ]


def test_missing_secret_file_is_refused_at_the_item_line(cfg: ConfigDir) -> None:
    text = jwt("HS256", f"- secret: {SECRET}\n- kid: b\n  secret_file: nope/secret")
    assert cfg.errors(text) == [
        "config.yaml:7: jwt.keys[1].secret_file: cannot read nope/secret: No such file or directory"
    ]


def test_directory_as_key_file_is_refused(cfg: ConfigDir) -> None:
    (cfg.path / "adir").mkdir()
    assert cfg.errors(jwt("HS256", "- secret_file: adir")) == [
        "config.yaml:6: jwt.keys[0].secret_file: cannot read adir: Is a directory"
    ]


def test_huge_key_file_is_refused(cfg: ConfigDir) -> None:
    (cfg.path / "big").write_bytes(b"x" * (1 << 20) + b"y")
    assert cfg.errors(jwt("HS256", "- secret_file: big")) == [
        "config.yaml:6: jwt.keys[0].secret_file: big is larger than 1 MiB; is it the right file?"
    ]


def test_pem_in_a_secret_file_is_refused(keys_here: ConfigDir) -> None:
    assert keys_here.errors(jwt("HS256", "- secret_file: rsa.pem")) == [
        "config.yaml:6: jwt.keys[0].secret_file: holds a PEM key, not an HMAC secret; use public_key_file"
    ]


# --- public key files ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "algorithm"),
    [
        ("rsa.pem", "RS256"),
        ("rsa.pem", "PS512"),
        ("ec256.pem", "ES256"),
        ("ec384.pem", "ES384"),
        ("ed25519.pem", "EdDSA"),
    ],
)
def test_public_key_file_is_read(keys_here: ConfigDir, name: str, algorithm: str) -> None:
    config = keys_here.config(jwt(algorithm, f"- public_key_file: {name}\n  kid: k"))
    pem = (keys_here.path / name).read_bytes()
    assert config.jwt.keys == (PublicKeyFile(name, pem, 6, "k"),)


@pytest.mark.parametrize(
    ("name", "algorithms", "message"),
    [
        ("garbage.pem", "RS256", "garbage.pem is not a PEM public key"),
        (
            "rsa-private.pem",
            "RS256",
            "rsa-private.pem holds a private key; give the public key (never ship the private half)",
        ),
        ("cert.pem", "RS256", "cert.pem is a certificate; give the PEM public key it contains"),
        ("ed448.pem", "EdDSA", "ed448.pem is not an RSA, EC or Ed25519 public key"),
        (
            "rsa.pem",
            "ES256",
            "rsa.pem is an RSA key, which verifies PS256, PS384, PS512, RS256, RS384, RS512; "
            "jwt.algorithms allows only ES256",
        ),
        (
            "ec384.pem",
            "ES256, RS256",
            "ec384.pem is an EC key on secp384r1, which verifies ES384; "
            "jwt.algorithms allows only ES256, RS256",
        ),
        (
            "ec256k1.pem",
            "ES256",
            "ec256k1.pem is an EC key on secp256k1, which verifies nothing authproxy supports; "
            "jwt.algorithms allows only ES256",
        ),
        (
            "ed25519.pem",
            "RS256",
            "ed25519.pem is an Ed25519 key, which verifies EdDSA; jwt.algorithms allows only RS256",
        ),
    ],
)
def test_unusable_public_key_file_is_refused(
    keys_here: ConfigDir, name: str, algorithms: str, message: str
) -> None:
    assert keys_here.errors(jwt(algorithms, f"- public_key_file: {name}")) == [
        f"config.yaml:6: jwt.keys[0].public_key_file: {message}"
    ]


def test_missing_public_key_file_names_the_resolved_path(cfg: ConfigDir) -> None:
    (cfg.path / "etc").mkdir()
    cfg.write(jwt("RS256", "- public_key_file: keys/public.pem"), "etc/config.yaml")

    with pytest.raises(ConfigError) as caught:
        load("etc/config.yaml", {})
    assert [str(p) for p in caught.value.problems] == [
        "etc/config.yaml:6: jwt.keys[0].public_key_file: cannot read etc/keys/public.pem: "
        "No such file or directory"
    ]


# --- JWKS files ------------------------------------------------------------------------------


def test_jwks_file_is_read(cfg: ConfigDir) -> None:
    document = json.dumps({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "abc", "kid": "a"}]}).encode()
    (cfg.path / "jwks.json").write_bytes(document)
    config = cfg.config(jwt("EdDSA", "- jwks_file: jwks.json"))
    assert config.jwt.keys == (JwksFile("jwks.json", document, 6),)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "jwks.json is not JSON: Expecting property name enclosed in double quotes at line 1"),
        (b"\xff\xfe\xfa", "jwks.json is not JSON: not UTF-8 text"),
        (b"[]", "jwks.json is not a JWKS: expected a JSON object with a 'keys' list"),
        (b'{"keys": {}}', "jwks.json is not a JWKS: expected a JSON object with a 'keys' list"),
        (b'{"keys": ["x"]}', "jwks.json is not a JWKS: expected a JSON object with a 'keys' list"),
        (b'{"keys": []}', "jwks.json has no keys"),
    ],
)
def test_bad_jwks_file_is_refused(cfg: ConfigDir, content: bytes, message: str) -> None:
    (cfg.path / "jwks.json").write_bytes(content)
    assert cfg.errors(jwt("RS256", "- jwks_file: jwks.json")) == [
        f"config.yaml:6: jwt.keys[0].jwks_file: {message}"
    ]


# --- remote sources --------------------------------------------------------------------------


def test_jwks_url_and_oidc_issuer_are_read(cfg: ConfigDir) -> None:
    text = jwt(
        "RS256, ES256",
        "- jwks_url: https://idp.example.com/jwks.json\n  refresh_interval: 1m\n"
        "- oidc_issuer: http://127.0.0.1:8000/realms/x\n"
        "- jwks_url: http://keys.internal/jwks\n  allow_insecure_http: true",
    )
    assert cfg.config(text).jwt.keys == (
        JwksUrl("https://idp.example.com/jwks.json", 6, 60.0, False),
        OidcIssuer("http://127.0.0.1:8000/realms/x", 8),
        JwksUrl("http://keys.internal/jwks", 9, 300.0, True),
    )


def test_unknown_kid_refresh_interval_defaults_to_ten_seconds_and_is_read(cfg: ConfigDir) -> None:
    text = jwt(
        "RS256",
        "- jwks_url: https://idp.example.com/jwks.json\n"
        "- oidc_issuer: https://idp.example.com/realms/x\n  unknown_kid_refresh_interval: 2s\n"
        "- jwks_url: https://idp.example.com/other\n  unknown_kid_refresh_interval: 1m",
    )
    keys = cfg.config(text).jwt.keys
    intervals = [k.unknown_kid_refresh_interval for k in keys if isinstance(k, JwksUrl | OidcIssuer)]
    assert intervals == [10.0, 2.0, 60.0]


@pytest.mark.parametrize("url", ["http://localhost:8080/jwks", "http://[::1]/jwks", "http://127.8.9.10/jwks"])
def test_http_to_a_loopback_host_is_allowed(cfg: ConfigDir, url: str) -> None:
    key = cfg.config(jwt("RS256", f"- jwks_url: {url}")).jwt.keys[0]
    assert key == JwksUrl(url, 6)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            "- jwks_url: http://idp.example.com/jwks",
            "jwt.keys[0].jwks_url: must use https: keys fetched over http can be swapped in transit "
            "(http is allowed for loopback hosts, or with allow_insecure_http: true)",
        ),
        (
            "- oidc_issuer: https://idp.example.com?tenant=1",
            "jwt.keys[0].oidc_issuer: an issuer must not have a ?query",
        ),
        ("- oidc_issuer: idp.example.com", "jwt.keys[0].oidc_issuer: must be an http:// or https:// URL"),
        ("- jwks_url: https://idp/jwks#k", "jwt.keys[0].jwks_url: must not have a #fragment"),
        (
            "- jwks_url: https://idp/jwks\n  refresh_interval: 0s",
            "jwt.keys[0].refresh_interval: must be more than zero",
        ),
        (
            "- jwks_url: https://idp/jwks\n  unknown_kid_refresh_interval: 0s",
            "jwt.keys[0].unknown_kid_refresh_interval: must be more than zero",
        ),
        (
            "- jwks_url: https://idp/jwks\n  allow_insecure_http: 'true'",
            "jwt.keys[0].allow_insecure_http: expected true or false, got a string",
        ),
    ],
)
def test_bad_remote_source_is_refused(cfg: ConfigDir, item: str, message: str) -> None:
    line = 7 if "\n" in item else 6
    assert cfg.errors(jwt("RS256", item)) == [f"config.yaml:{line}: {message}"]


# --- item shape ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            "- kid: lonely",
            "config.yaml:6: jwt.keys[0]: has no key source; give exactly one of secret, secret_file, "
            "public_key_file, jwks_file, jwks_url, oidc_issuer",
        ),
        (
            f"- secret: {SECRET}\n  jwks_url: https://idp/jwks",
            "config.yaml:6: jwt.keys[0]: has secret and jwks_url; give exactly one of secret, secret_file, "
            "public_key_file, jwks_file, jwks_url, oidc_issuer",
        ),
        (
            "- jwks_url: https://idp/jwks\n  kid: a",
            "config.yaml:7: jwt.keys[0].kid: does not apply to jwks_url",
        ),
        (
            f"- secret: {SECRET}\n  refresh_interval: 1m",
            "config.yaml:7: jwt.keys[0].refresh_interval: does not apply to secret",
        ),
        (f"- secret: {SECRET}\n  algorithm: HS256", "config.yaml:7: unknown key 'algorithm' in jwt.keys[0]"),
        ("- https://idp/jwks", "config.yaml:6: jwt.keys[0]: expected a map, got a string"),
        (f"- secret: {SECRET}\n  kid: [a]", "config.yaml:7: jwt.keys[0].kid: expected a string, got a list"),
    ],
)
def test_malformed_key_item_is_refused(cfg: ConfigDir, item: str, message: str) -> None:
    algorithms = "HS256" if "secret" in item else "RS256"
    assert cfg.errors(jwt(algorithms, item)) == [message]


def test_duplicate_kid_is_refused(cfg: ConfigDir) -> None:
    text = jwt("HS256", f"- secret: {SECRET}\n  kid: a\n- secret: {SECRET}x\n  kid: a")
    assert cfg.errors(text) == ["config.yaml:8: jwt.keys[1].kid: 'a' is already used by jwt.keys[0]"]


def test_secret_value_is_never_in_a_message(cfg: ConfigDir) -> None:
    errors = cfg.errors(jwt("HS256", "- secret: [hunter2-secret]\n- secret: -----BEGIN hunter2"))
    assert errors == [
        "config.yaml:6: jwt.keys[0].secret: expected a string, got a list",
        "config.yaml:7: jwt.keys[1].secret: holds a PEM key, not an HMAC secret; use public_key_file",
    ]


# --- algorithms against keys -----------------------------------------------------------------


def test_hmac_beside_a_public_key_is_refused(keys_here: ConfigDir) -> None:
    text = jwt("RS256, HS256", f"- public_key_file: rsa.pem\n- secret: {SECRET}")
    assert keys_here.errors(text) == [
        "config.yaml:3: jwt.algorithms: HS256 cannot be allowed beside a public key source (line 6): "
        "split HMAC and public-key verification into separate proxies"
    ]


@pytest.mark.parametrize(
    "item", ["- jwks_url: https://idp/jwks", "- oidc_issuer: https://idp", "- jwks_file: j.json"]
)
def test_hmac_beside_any_asymmetric_source_is_refused(cfg: ConfigDir, item: str) -> None:
    (cfg.path / "j.json").write_text('{"keys": [{"kty": "RSA"}]}')
    errors = cfg.errors(jwt("HS512", item))
    assert errors == [
        "config.yaml:3: jwt.algorithms: HS512 cannot be allowed beside a public key source (line 6): "
        "split HMAC and public-key verification into separate proxies"
    ]


def test_asymmetric_algorithm_with_only_secrets_is_refused(cfg: ConfigDir) -> None:
    text = jwt("RS256, ES256", f"- secret: {SECRET}")
    assert cfg.errors(text) == [
        "config.yaml:3: jwt.algorithms: RS256, ES256 needs a public key, jwks or oidc_issuer; "
        "only HMAC secrets are configured, so no token could ever verify"
    ]


def test_secret_beside_public_keys_without_hmac_is_a_warning(keys_here: ConfigDir) -> None:
    _, warnings = keys_here.load(jwt("RS256", f"- public_key_file: rsa.pem\n- secret: {SECRET}"))
    assert warnings == [
        "config.yaml:7: jwt.keys[1]: no HS* algorithm is configured, so this secret is never used"
    ]


def test_key_order_and_mix_are_kept(keys_here: ConfigDir) -> None:
    text = jwt(
        "RS256, ES256, EdDSA",
        "- public_key_file: ec256.pem\n- public_key_file: rsa.pem\n- public_key_file: ed25519.pem",
    )
    keys = keys_here.config(text).jwt.keys
    assert [(k.path, k.line) for k in keys if isinstance(k, PublicKeyFile)] == [
        ("ec256.pem", 6),
        ("rsa.pem", 7),
        ("ed25519.pem", 8),
    ]
