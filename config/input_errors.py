"""pydantic validation errors as the API's ``fields`` map (pure: no Django imports)."""

from pydantic import ValidationError


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
