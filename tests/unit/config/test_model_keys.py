"""model_keys: a section's YAML keys are its model's fields, so a new field is a new key, no list to edit."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from authproxy.config.fields import model_keys


@dataclass(frozen=True, slots=True)
class _Model:
    target: str
    line: int
    file: str
    timeout: float = 1.0
    context: object = None


def test_keys_are_the_fields_in_order_without_their_location() -> None:
    assert model_keys(_Model) == ("target", "timeout", "context")


def test_skip_and_rename_where_the_yaml_differs() -> None:
    assert model_keys(_Model, skip=("context",), rename={"target": "get"}) == ("get", "timeout")


@pytest.mark.parametrize(("skip", "rename"), [(("contxt",), None), ((), {"targt": "get"})])
def test_a_name_that_is_no_field_is_refused(skip: tuple[str, ...], rename: dict[str, str] | None) -> None:
    with pytest.raises(ValueError, match="_Model has no field"):
        model_keys(_Model, skip=skip, rename=rename)
