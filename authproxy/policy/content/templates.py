"""The owner lookup's template grammar: `{name}` placeholders in `owner.get` and `owner.expect`.

One reading for the three places that need it: the runtime build checks every name against its route
(content/plan.py), the plan tells whether the lookup reads the form body, and the content step fills them in.
"""

from __future__ import annotations

import re

__all__ = ["template_names"]

_TEMPLATE = re.compile(r"\{([^{}]*)\}")


def template_names(template: str) -> list[str]:
    """The placeholder names of `template`, in order (`/s/{query.id}` -> ["query.id"])."""
    return _TEMPLATE.findall(template)
