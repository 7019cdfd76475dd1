"""Item scopes named by the body: `items: {json:/agent_id: ["agents:{value}:run"]}`.

The required scope is the template with the body's value bound. As for ids in the path, it is met by
that exact scope, by the template with `*` for the item (`agents:*:run`) and by the template without
the item segment (`agents:run`, family-wide).
"""

from __future__ import annotations

from authproxy.errors import InsufficientScope
from authproxy.policy.content.fields import Body, field_values, malformed
from authproxy.policy.content.plan import ContentPlan

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
        for value in field_values(body, item.field):
            if not isinstance(value, str) or not value or ":" in value or any(c.isspace() for c in value):
                raise malformed(f"{item.field} must name an item id")
            for template in item.scopes:
                accepted = item_satisfied_by(template, value)
                required.append(accepted[0])
                if plan.granted.isdisjoint(accepted):
                    missing.append(accepted[0])
    if missing:
        raise InsufficientScope(
            "insufficient scope for the item named in the body", tuple(required), tuple(missing)
        )
