"""Example bodies in the shapes the vendors document (one JSON file per provider), and a check that
a fake's answer has the same shape: every key of the example, each value of the same JSON type."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent


@cache
def _load(provider: str) -> dict[str, Any]:
    return json.loads((HERE / f"{provider}.json").read_text())


def example(provider: str, name: str) -> Any:
    """A fresh copy of one example (callers may change it)."""
    return json.loads(json.dumps(_load(provider)[name]))


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), "null")


def shape_differences(actual: Any, expected: Any, where: str = "$") -> list[str]:
    """Where `actual` lacks a key of `expected` or holds another JSON type. A null in the example
    means "nullable": any value passes. Arrays: every element is checked against the first example."""
    if expected is None:
        return []
    if _kind(actual) != _kind(expected):
        return [f"{where}: {_kind(actual)} where the example has {_kind(expected)}"]
    problems: list[str] = []
    if isinstance(expected, dict):
        for key, value in expected.items():
            if key not in actual:
                problems.append(f"{where}.{key}: missing")
            else:
                problems += shape_differences(actual[key], value, f"{where}.{key}")
    elif isinstance(expected, list) and expected:
        for index, item in enumerate(actual):
            problems += shape_differences(item, expected[0], f"{where}[{index}]")
    return problems


def assert_shape(actual: Any, expected: Any) -> None:
    problems = shape_differences(actual, expected)
    assert not problems, "answer differs from the documented shape:\n" + "\n".join(problems)
