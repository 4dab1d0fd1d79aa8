"""Helpers of the provider-neutral contract (`providers/base.py`) that every format uses."""

from __future__ import annotations

import pytest

from evalcluster.providers.base import Tool, function_declaration, tool_arguments


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"city": "Paris"}', {"city": "Paris"}),
        ("", {}),
        ("not json", {}),
        ("[1, 2]", {}),  # JSON, but not an object
    ],
)
def test_tool_arguments_are_the_json_object_the_model_wrote_or_empty(text, expected) -> None:
    assert tool_arguments(text) == expected


def test_a_function_declaration_leaves_out_what_the_tool_does_not_say() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    assert function_declaration(Tool("f")) == {"name": "f"}
    assert function_declaration(Tool("f", "Weather.", schema)) == {
        "name": "f",
        "description": "Weather.",
        "parameters": schema,
    }
