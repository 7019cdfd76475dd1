from __future__ import annotations

from typing import Literal

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from authproxy.auth.extract import extract_token
from authproxy.config.model import JwtConfig
from authproxy.errors import InvalidToken

Source = Literal["header", "cookie"]


def _config(*sources: Source, header: str = "Authorization", cookie: str = "access_token") -> JwtConfig:
    return JwtConfig(
        algorithms=("HS256",), keys=(), sources=sources or ("header",), header=header, cookie=cookie
    )


def _headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


def test_bearer_header_yields_token() -> None:
    assert extract_token(_headers(("Authorization", "Bearer abc.def.ghi")), _config()) == "abc.def.ghi"


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "BeArEr"])
def test_bearer_scheme_is_case_insensitive(scheme: str) -> None:
    assert extract_token(_headers(("authorization", f"{scheme} tok")), _config()) == "tok"


def test_plain_multidict_is_accepted() -> None:
    assert extract_token(CIMultiDict([("Authorization", "Bearer tok")]), _config()) == "tok"


def test_no_source_present_returns_none() -> None:
    headers = _headers(("Accept", "*/*"), ("Cookie", "other=1"))
    assert extract_token(headers, _config("header", "cookie")) is None


def test_custom_header_name_is_used() -> None:
    headers = _headers(("Authorization", "Basic Zm9vOmJhcg=="), ("X-Token", "Bearer tok"))
    assert extract_token(headers, _config(header="X-Token")) == "tok"


def test_multiple_authorization_headers_is_refused() -> None:
    headers = _headers(("Authorization", "Bearer a"), ("authorization", "Bearer b"))
    with pytest.raises(InvalidToken, match="multiple authorization headers"):
        extract_token(headers, _config())


@pytest.mark.parametrize("value", ["Basic Zm9vOmJhcg==", "Token abc", "Bearertok", "", "abc.def.ghi"])
def test_non_bearer_scheme_is_refused(value: str) -> None:
    with pytest.raises(InvalidToken, match="authorization scheme is not Bearer"):
        extract_token(_headers(("Authorization", value)), _config())


@pytest.mark.parametrize("value", ["Bearer", "Bearer "])
def test_empty_bearer_token_is_refused(value: str) -> None:
    with pytest.raises(InvalidToken, match="empty bearer token"):
        extract_token(_headers(("Authorization", value)), _config())


@pytest.mark.parametrize("value", ["Bearer a b", "Bearer  tok", "Bearer tok\tx"])
def test_more_than_one_bearer_credential_is_refused(value: str) -> None:
    with pytest.raises(InvalidToken, match="malformed bearer credential"):
        extract_token(_headers(("Authorization", value)), _config())


def test_cookie_yields_token() -> None:
    headers = _headers(("Cookie", "theme=dark; access_token=abc.def.ghi; lang=en"))
    assert extract_token(headers, _config("cookie")) == "abc.def.ghi"


def test_quoted_cookie_value_is_unquoted() -> None:
    assert extract_token(_headers(("Cookie", 'access_token="tok"')), _config("cookie")) == "tok"


def test_cookie_name_is_matched_exactly() -> None:
    headers = _headers(("Cookie", "my_access_token=x; access_token_old=y; Access_Token=z"))
    assert extract_token(headers, _config("cookie")) is None


def test_cookie_split_over_several_headers_is_found() -> None:
    headers = _headers(("Cookie", "a=1"), ("Cookie", "access_token=tok"))
    assert extract_token(headers, _config("cookie")) == "tok"


def test_duplicate_cookie_is_refused() -> None:
    headers = _headers(("Cookie", "access_token=a; x=1; access_token=b"))
    with pytest.raises(InvalidToken, match="cookie access_token appears more than once"):
        extract_token(headers, _config("cookie"))


def test_duplicate_cookie_across_headers_is_refused() -> None:
    headers = _headers(("Cookie", "access_token=a"), ("Cookie", "access_token=a"))
    with pytest.raises(InvalidToken, match="appears more than once"):
        extract_token(headers, _config("cookie"))


def test_empty_cookie_token_is_refused() -> None:
    with pytest.raises(InvalidToken, match="empty cookie token"):
        extract_token(_headers(("Cookie", "access_token=; a=1")), _config("cookie"))


def test_custom_cookie_name_is_used() -> None:
    headers = _headers(("Cookie", "access_token=a; session=tok"))
    assert extract_token(headers, _config("cookie", cookie="session")) == "tok"


def test_header_wins_over_cookie_in_default_order() -> None:
    headers = _headers(("Authorization", "Bearer from-header"), ("Cookie", "access_token=from-cookie"))
    assert extract_token(headers, _config("header", "cookie")) == "from-header"


def test_cookie_wins_when_listed_first() -> None:
    headers = _headers(("Authorization", "Bearer from-header"), ("Cookie", "access_token=from-cookie"))
    assert extract_token(headers, _config("cookie", "header")) == "from-cookie"


def test_cookie_used_when_header_absent() -> None:
    headers = _headers(("Cookie", "access_token=from-cookie"))
    assert extract_token(headers, _config("header", "cookie")) == "from-cookie"


def test_malformed_header_does_not_fall_through_to_cookie() -> None:
    headers = _headers(("Authorization", "Basic abc"), ("Cookie", "access_token=from-cookie"))
    with pytest.raises(InvalidToken, match="not Bearer"):
        extract_token(headers, _config("header", "cookie"))


def test_cookie_ignored_when_not_a_configured_source() -> None:
    assert extract_token(_headers(("Cookie", "access_token=tok")), _config("header")) is None


def test_header_ignored_when_not_a_configured_source() -> None:
    assert extract_token(_headers(("Authorization", "Bearer tok")), _config("cookie")) is None
