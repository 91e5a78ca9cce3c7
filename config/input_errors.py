"""pydantic and msgspec validation errors as the API's field names and reasons (pure: no Django)."""

import re

import msgspec
from pydantic import ValidationError

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
