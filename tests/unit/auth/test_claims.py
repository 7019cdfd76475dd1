from __future__ import annotations

from typing import Any

import pytest

from authproxy.auth.claims import Identity, check_forwardable, identity_from_claims
from authproxy.config.model import ClaimPaths
from authproxy.errors import InvalidToken

DEFAULT = ClaimPaths()


def test_default_paths_read_sub_session_and_scopes() -> None:
    claims = {"sub": "u1", "session_id": "s1", "scopes": ["a:read", "b:write"], "jti": "j1"}
    assert identity_from_claims(claims, DEFAULT) == Identity(
        "u1", "s1", frozenset({"a:read", "b:write"}), "j1"
    )


def test_missing_claims_give_empty_identity() -> None:
    assert identity_from_claims({}, DEFAULT) == Identity(None, None, frozenset(), None)


def test_space_separated_scope_string_is_split() -> None:
    identity = identity_from_claims({"scope": "openid  agents:read agents:run"}, ClaimPaths(scopes="scope"))
    assert identity.scopes == frozenset({"openid", "agents:read", "agents:run"})


def test_empty_scope_string_gives_no_scopes() -> None:
    assert identity_from_claims({"scopes": ""}, DEFAULT).scopes == frozenset()


def test_dotted_path_walks_nested_objects() -> None:
    claims = {"realm_access": {"roles": ["admin"]}, "ctx": {"user": {"id": "u9"}}}
    identity = identity_from_claims(claims, ClaimPaths(user_id="ctx.user.id", scopes="realm_access.roles"))
    assert identity.user_id == "u9"
    assert identity.scopes == frozenset({"admin"})


def test_dotted_path_through_non_object_is_missing() -> None:
    claims = {"realm_access": ["roles"]}
    assert identity_from_claims(claims, ClaimPaths(scopes="realm_access.roles")).scopes == frozenset()


def test_literal_claim_name_with_dots_wins_over_walk() -> None:
    claims = {"https://example.com/roles": ["x"], "https://example": {"com/roles": ["y"]}}
    identity = identity_from_claims(claims, ClaimPaths(scopes="https://example.com/roles"))
    assert identity.scopes == frozenset({"x"})


@pytest.mark.parametrize("value", [42, 1.5, True, None, {"a": 1}, ["ok", 3], [["nested"]]])
def test_scopes_of_wrong_type_are_refused(value: Any) -> None:
    with pytest.raises(InvalidToken, match="scopes claim has the wrong type"):
        identity_from_claims({"scopes": value}, DEFAULT)


@pytest.mark.parametrize("value", [123, 1.0, None, ["u"], {"id": "u"}, False])
def test_non_string_user_id_is_refused(value: Any) -> None:
    with pytest.raises(InvalidToken, match="user id claim has the wrong type"):
        identity_from_claims({"sub": value}, DEFAULT)


def test_non_string_session_id_is_refused() -> None:
    with pytest.raises(InvalidToken, match="session id claim has the wrong type"):
        identity_from_claims({"session_id": 7}, DEFAULT)


def test_non_string_jti_is_refused() -> None:
    with pytest.raises(InvalidToken, match="jti claim has the wrong type"):
        identity_from_claims({"jti": 7}, DEFAULT)


IDENTITY_HEADERS = (
    ("user_id", "X-Auth-User-Id"),
    ("session_id", "X-Auth-Session-Id"),
    ("scopes", "X-Auth-Scopes"),
)


def _forwardable_refusal(identity: Identity, headers: tuple[tuple[str, str], ...] = IDENTITY_HEADERS) -> str:
    with pytest.raises(InvalidToken) as caught:
        check_forwardable(identity, headers)
    return caught.value.reason


@pytest.mark.parametrize("value", ["alice\r\nX-Admin: 1", "alice\nx", "alice\x00", "al\x7fice"])
def test_identity_claim_with_control_character_cannot_be_forwarded(value: str) -> None:
    assert _forwardable_refusal(Identity(value, None, frozenset(), None)) == (
        "the user_id claim holds a control character"
    )
    assert _forwardable_refusal(Identity(None, value, frozenset(), None)) == (
        "the session_id claim holds a control character"
    )
    check_forwardable(Identity(value, value, frozenset(), None), ())  # nothing forwarded, nothing to refuse


@pytest.mark.parametrize("scope", ["x proxy:admin", "a\tb", "", "a\nb"])
def test_scope_that_cannot_travel_space_separated_cannot_be_forwarded(scope: str) -> None:
    assert _forwardable_refusal(Identity("alice", None, frozenset({"ok", scope}), None)) == (
        "a scope holds whitespace and cannot be forwarded"
    )
    check_forwardable(Identity("alice", "s\tid", frozenset({"a:read", "b:write"}), None), IDENTITY_HEADERS)
