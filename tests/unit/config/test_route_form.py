"""The mapping form of a route rule (`{scopes, pin, items, response, owner, max_body}`) and
`policy.user_isolation`: what loads, and every mistake located as FILE:LINE: message."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

import pytest

from authproxy.config.content import ContentRule, FieldRef, ItemScopes, OwnerLookup, Pin, ResponseCheck
from authproxy.errors import ConfigError
from authproxy.runtime import build_runtime

if TYPE_CHECKING:
    from tests.rigs.configdir import ConfigDir


def routes(head: str, body: str, extra: str = "") -> str:
    """`policy:` on line 8, `routes:` on line 9 (after `extra` lines), the rules from line 10."""
    return head + "policy:\n" + extra + "  routes:\n" + textwrap.indent(textwrap.dedent(body), "    ")


def test_list_form_keeps_no_content_rule(cfg: ConfigDir, head: str) -> None:
    config = cfg.config(routes(head, '"GET /a": [a:read]\n'))
    assert config.policy.routes[0].content is None


def test_mapping_with_scopes_only_is_the_list_form(cfg: ConfigDir, head: str) -> None:
    config = cfg.config(routes(head, '"GET /a": {scopes: [a:read]}\n'))
    rule = config.policy.routes[0]
    assert (rule.scopes, rule.content) == (("a:read",), None)


def test_full_mapping_loads(cfg: ConfigDir, head: str) -> None:
    body = """\
    "POST /things/{id}":
      scopes: [t:write]
      pin: {query.user_id: user_id, json:/meta/owner: user_id, form.sid: session_id}
      items: {json:/agent_id: ["agents:{value}:run"]}
      response: {json:/user_id: user_id}
      owner: {get: "/things/{id}?owner={caller.user_id}", expect: {json:/kind: "{id}"}, status: 403}
      max_body: 2048
    """
    rule = cfg.config(routes(head, body)).policy.routes[0]
    assert rule.content == ContentRule(
        pins=(
            Pin(FieldRef("query", "user_id"), "user_id"),
            Pin(FieldRef("json", "/meta/owner", ("meta", "owner")), "user_id"),
            Pin(FieldRef("form", "sid"), "session_id"),
        ),
        items=(ItemScopes(FieldRef("json", "/agent_id", ("agent_id",)), ("agents:{value}:run",)),),
        response=(ResponseCheck(FieldRef("json", "/user_id", ("user_id",)), "user_id"),),
        owner=OwnerLookup(
            "/things/{id}?owner={caller.user_id}", ((FieldRef("json", "/kind", ("kind",)), "{id}"),), 403
        ),
        max_body=2048,
    )


AT = 'config.yaml:10: policy.routes["GET /a"]'
IN = 'in policy.routes["GET /a"]'


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("{pin: {query.u: user_id}}", f"config.yaml:10: missing required key 'scopes' {IN}"),
        ("{scopes: [a], pins: {}}", f"config.yaml:10: unknown key 'pins' {IN} (did you mean 'pin'?)"),
        (
            "{scopes: [a], pin: {body.u: user_id}}",
            f"{AT}.pin: 'body.u': a field is query.NAME, form.NAME or json:/POINTER",
        ),
        (
            "{scopes: [a], pin: {json:user: user_id}}",
            f"{AT}.pin: 'json:user': a JSON field is json:/pointer, e.g. json:/user_id",
        ),
        (
            "{scopes: [a], pin: {query.u: email}}",
            f"{AT}.pin.query.u: must be one of user_id, session_id; got 'email'",
        ),
        (
            "{scopes: [a], response: {query.u: user_id}}",
            f"{AT}.response: 'query.u': only json fields are allowed here",
        ),
        (
            "{scopes: [a], items: {json:/x: [agents:run]}}",
            f"{AT}.items.json:/x: every item scope names the item as {{value}}, e.g. agents:{{value}}:run",
        ),
        ("{scopes: [a], max_body: 0}", f"{AT}.max_body: a number of bytes between 1 and 1073741824"),
        (
            "{scopes: [a], owner: {get: things}}",
            f"{AT}.owner.get: an upstream path starting with '/', e.g. /sessions/{{query.session_id}}",
        ),
        ("{scopes: [a], owner: {get: /x, status: 500}}", f"{AT}.owner.status: a 4xx status code"),
    ],
)
def test_bad_mapping_is_located(cfg: ConfigDir, head: str, rule: str, message: str) -> None:
    assert cfg.errors(routes(head, f'"GET /a": {rule}\n')) == [message]


def test_owner_template_naming_no_parameter_is_refused_at_build(cfg: ConfigDir, head: str) -> None:
    config = cfg.config(routes(head, '"DELETE /t/{id}": {scopes: [a], owner: {get: "/t/{tid}"}}\n'))
    with pytest.raises(ConfigError) as refused:
        build_runtime(config)
    assert [str(p) for p in refused.value.problems] == [
        "config.yaml:10: route 'DELETE /t/{id}': owner: '{tid}' is not a path parameter of the route, "
        "{query.NAME}, {form.NAME}, {caller.user_id} or {caller.session_id}"
    ]


def test_user_isolation_needs_the_agentos_preset(cfg: ConfigDir, head: str) -> None:
    text = routes(head, '"GET /a": [a]\n', extra="  user_isolation: true\n")
    message = "policy.user_isolation: needs 'preset: agentos' (elsewhere, pin fields with a rule's 'pin:')"
    assert cfg.errors(text) == [f"config.yaml:9: {message}"]


def test_user_isolation_merges_the_fragment_and_user_rules_still_win(cfg: ConfigDir, head: str) -> None:
    extra = "  preset: agentos\n  user_isolation: true\n"
    config = cfg.config(routes(head, '"GET /memories": [memories:read]\n', extra=extra))
    by_key = {r.key: r for r in config.policy.routes}
    assert by_key["GET /sessions"].content == ContentRule(
        pins=(Pin(FieldRef("query", "user_id"), "user_id"),)
    )
    assert by_key["GET /sessions"].file.endswith("agentos-isolation.yaml")
    assert by_key["GET /memories"].content is None  # the user's own rule replaced the fragment's
    assert config.policy.user_isolation is True
    build_runtime(config)  # every template of the fragment names what its route binds


def test_without_isolation_the_preset_pins_nothing(cfg: ConfigDir, head: str) -> None:
    config = cfg.config(routes(head, '"GET /x": [x]\n', extra="  preset: agentos\n"))
    pinned = [r.key for r in config.policy.routes if r.content is not None and r.content.pins]
    assert pinned == []
