from __future__ import annotations

import pytest

from resolver.text import first_problem, problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Inner Mongolia Dairy 内蒙古乳业", None),
        ("two\nlines\tand a tab\r\n", None),
        ("nul\x00here", "contains the control character U+0000 at position 3"),
        ("\x1b[31m", "contains the control character U+001B at position 0"),
        ("del\x7f", "contains the control character U+007F at position 3"),
        ("half \ud800", "contains a lone surrogate U+D800 at position 5"),
    ],
)
def test_problem_names_the_character_and_where_it_is(text: str, expected: str | None) -> None:
    assert problem(text) == expected


def test_first_problem_names_the_path_in_nested_json() -> None:
    assert first_problem({"a": ["ok", {"b": "x\x00"}]}, "attributes") == (
        "attributes.a[1].b: contains the control character U+0000 at position 1"
    )
    assert first_problem({"bad\x00key": 1}, "attributes") == (
        "attributes: a key contains the control character U+0000 at position 3"
    )
    assert first_problem({"n": 1, "ok": True, "none": None, "s": "fine"}, "body") is None
