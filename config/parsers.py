"""Request body parsers of the REST APIs: JSON that PostgreSQL can store, or a 400 that says why."""

import json
from collections.abc import Mapping
from typing import IO, Any

from rest_framework import exceptions, parsers

from config.input_errors import NUL_REASON, nested_too_deep, nul_field

# Far deeper than any body of the APIs (a catalog row's attributes are three levels down), and far
# from where Python's decoder runs out of stack.
MAX_BODY_DEPTH = 32


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, and a 400 rather than a 500 for what it lets through: a body nested
    deeper than Python's decoder goes, or a NUL character (``\\u0000``), which PostgreSQL stores
    in neither text nor JSON, in any key or string; the error names the field that holds it."""

    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        body = stream.read() if stream is not None else b""
        try:
            data = json.loads(body, parse_constant=_refuse_constant)
        except RecursionError as exc:
            raise exceptions.ValidationError({"body": [f"is nested more than {MAX_BODY_DEPTH} levels deep"]}) from exc
        except ValueError as exc:  # also invalid UTF-8
            raise exceptions.ParseError(f"JSON parse error - {exc}") from exc
        if nested_too_deep(data, MAX_BODY_DEPTH):
            raise exceptions.ValidationError({"body": [f"is nested more than {MAX_BODY_DEPTH} levels deep"]})
        if b"\\u0000" in body or b"\x00" in body:
            field = nul_field(data)
            if field is not None:
                raise exceptions.ValidationError({field or "body": [NUL_REASON]})
        return data


class PlainTextJSONParser(JSONParser):
    """JSON sent as ``text/plain``: browsers send it that way to avoid a CORS preflight request
    (analytics.js does the same), so the body is JSON whatever the label says."""

    media_type = "text/plain"
