"""pydantic and msgspec validation errors as the API's field names and reasons, and what makes
decoded JSON unstorable (pure: no Django)."""

import re
from typing import Any

import msgspec
from pydantic import ValidationError

NUL_REASON = "contains a NUL character (\\u0000)"

_MSGSPEC_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]+)`")


def validation_error_fields(exc: ValidationError, *, root: str = "row") -> dict[str, list[str]]:
    """``{"price": ["Input should be greater than or equal to 0"], "tags.2": [...]}``; an error about
    the whole object is named ``root``."""
    fields: dict[str, list[str]] = {}
    for error in exc.errors(include_url=False):
        name = ".".join(str(part) for part in error["loc"]) or root
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "is not a known field"
        fields.setdefault(name, []).append(message)
    return fields


def msgspec_error_field(error: msgspec.ValidationError) -> tuple[str, str]:
    """``Expected `str`, got `int` - at `$.userId``` → ``("userId", "Expected `str`, got `int`")``; a
    missing field is named itself (not the object that lacks it); the whole value is ``""``."""
    message = str(error)
    match = _MSGSPEC_PATH.search(message)
    path = match.group("path").lstrip(".").replace("[", ".").replace("]", "") if match else ""
    reason = message[: match.start()] if match else message
    missing = _MISSING.match(reason)
    if missing:
        path, reason = ".".join(p for p in (path, missing.group("name")) if p), "is required"
    return path, reason


def nested_too_deep(value: Any, limit: int) -> bool:
    """Whether objects and arrays in ``value`` nest more than ``limit`` levels (without recursing)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def nul_field(value: Any, path: str = "") -> str | None:
    """The dotted name of the first key or string in ``value`` holding a NUL character (which
    PostgreSQL stores in neither text nor JSON), or None. Called only when the JSON holds one."""
    pending: list[tuple[Any, str]] = [(value, path)]
    while pending:
        item, where = pending.pop()
        if isinstance(item, str) and "\x00" in item:
            return where
        children = item.items() if isinstance(item, dict) else enumerate(item) if isinstance(item, list) else ()
        for key, child in children:
            name = f"{where}.{key}" if where else str(key)
            if isinstance(key, str) and "\x00" in key:
                return name
            pending.append((child, name))
    return None
