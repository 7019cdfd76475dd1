"""The owner lookup's `{name}` placeholders, read one way by the build, the plan and the content step."""

from __future__ import annotations

import pytest

from authproxy.policy.content.templates import template_names


@pytest.mark.parametrize(
    ("template", "names"),
    [
        ("/notes/{id}", ["id"]),
        ("/s/{query.session_id}?owner={caller.user_id}", ["query.session_id", "caller.user_id"]),
        ("/plain", []),
        ("/{}", [""]),  # an empty name is read, so the build can refuse it with its location
        ("/{a{b}", ["b"]),  # braces do not nest: only the innermost pair is a placeholder
    ],
)
def test_template_names_in_order(template: str, names: list[str]) -> None:
    assert template_names(template) == names
