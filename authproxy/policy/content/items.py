"""Item scopes named by the body: `items: {json:/agent_id: ["agents:{value}:run"]}`.

The required scope is the template with the body's value bound. As for ids in the path, it is met by
that exact scope, by the template with `*` for the item (`agents:*:run`) and by the template without
the item segment (`agents:run`, family-wide).
"""

from __future__ import annotations

from authproxy.errors import InsufficientScope
from authproxy.policy.content.fields import Body, malformed, the_value
from authproxy.policy.content.plan import ContentPlan
from authproxy.policy.scopes import is_item_id

__all__ = ["check_items", "item_satisfied_by"]


def item_satisfied_by(template: str, value: str) -> tuple[str, ...]:
    """The granted scopes that meet `template` for `value`, the exact per-item scope first."""
    family_wide = template.replace(":{value}:", ":").replace("{value}:", "").replace(":{value}", "")
    return (template.replace("{value}", value), template.replace("{value}", "*"), family_wide)


def check_items(plan: ContentPlan, body: Body) -> None:
    """Raise InsufficientScope unless the caller holds every item scope the body calls for."""
    required: list[str] = []
    missing: list[str] = []
    for item in plan.rule.items:
        value = the_value(body, item.field)
        if value is None:
            continue
        if not is_item_id(value):
            raise malformed(f"{item.field} must name an item id (no ':', whitespace or control character)")
        for template in item.scopes:
            accepted = item_satisfied_by(template, value)
            required.append(accepted[0])
            if plan.granted.isdisjoint(accepted):
                missing.append(accepted[0])
    if missing:
        raise InsufficientScope(
            "insufficient scope for the item named in the body", tuple(required), tuple(missing)
        )
