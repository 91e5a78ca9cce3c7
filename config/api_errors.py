"""One shape for every API error: ``{"code": ..., "detail": ..., "fields": {...}}``.

``code`` is stable and machine-readable; ``detail`` is a sentence for a person; ``fields``
maps a field (dotted for nested input, e.g. ``products.3.price``) to its messages.

A store that did not answer (``config.store_outages.STORE_ERRORS``) is no server error: the DRF
handler and, for every other view, ``StoreOutageMiddleware`` answer 503 with ``Retry-After`` and
code ``store_unavailable`` (an HTML page outside the API), never a 500 with a traceback.
"""

import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from config.store_outages import RETRY_AFTER_SECONDS, is_store_error

logger = logging.getLogger(__name__)

API_PATH_PREFIXES = ("/api/", "/v1/")
STORE_UNAVAILABLE = "A store the platform needs is unavailable; nothing was changed. Retry later."


def api_error_body(*, code: str, detail: str, fields: dict[str, list[str]] | None = None) -> dict[str, Any]:
    return {"code": code, "detail": detail, "fields": fields or {}}


def flatten_field_errors(errors: Any, prefix: str = "") -> dict[str, list[str]]:
    """Turn DRF's nested error structure into ``{"a.b.0.c": ["message", ...]}``."""
    flat: dict[str, list[str]] = {}
    if isinstance(errors, dict):
        for key, value in errors.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            flat.update(flatten_field_errors(value, name))
    elif isinstance(errors, list) and errors and all(isinstance(e, str) for e in errors):
        flat[prefix or "non_field_errors"] = [str(e) for e in errors]
    elif isinstance(errors, list):
        for index, value in enumerate(errors):
            if value:
                flat.update(flatten_field_errors(value, f"{prefix}.{index}" if prefix else str(index)))
    else:
        flat[prefix or "non_field_errors"] = [str(errors)]
    return flat


def _code_of(exc: exceptions.APIException) -> str:
    codes = exc.get_codes()
    if isinstance(codes, str):
        return codes
    return exc.default_code


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if is_store_error(exc):  # a store is down: retry later, not a server error (config/store_outages.py)
        body = api_error_body(code="store_unavailable", detail=STORE_UNAVAILABLE)
        return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE, headers=store_unavailable_headers())
    if isinstance(exc, Http404):  # as DRF's own handler does, so that the code is "not_found"
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    response = exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return None  # an unexpected error: Django's handler500 answers (as JSON under /api/).
    if isinstance(exc, exceptions.ValidationError):
        fields = flatten_field_errors(exc.detail)
        body = api_error_body(code="invalid", detail="The request has invalid fields.", fields=fields)
    else:
        body = api_error_body(code=_code_of(exc), detail=str(exc.detail))
    response.data = body
    return response


def is_api_path(request: HttpRequest) -> bool:
    return request.path.startswith(API_PATH_PREFIXES)


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api_path(request):
        body = api_error_body(code="not_found", detail="No such endpoint or object.")
        return JsonResponse(body, status=status.HTTP_404_NOT_FOUND)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception or Exception())


def handler500(request: HttpRequest) -> HttpResponse:
    if is_api_path(request):
        body = api_error_body(code="server_error", detail="An unexpected error occurred; it has been logged.")
        return JsonResponse(body, status=status.HTTP_500_INTERNAL_SERVER_ERROR)
    from django.views.defaults import server_error

    return server_error(request)


def store_unavailable_headers() -> dict[str, str]:
    return {"Retry-After": str(RETRY_AFTER_SECONDS), "Cache-Control": "no-store"}


def store_unavailable_response(request: HttpRequest) -> HttpResponse:
    """The 503 of a request that a store's outage stopped: JSON under the API paths, a page elsewhere."""
    if is_api_path(request):
        body = api_error_body(code="store_unavailable", detail=STORE_UNAVAILABLE)
        response: HttpResponse = JsonResponse(body, status=status.HTTP_503_SERVICE_UNAVAILABLE)
    else:
        response = HttpResponse(render_to_string("503.html"), status=status.HTTP_503_SERVICE_UNAVAILABLE)
    for header, value in store_unavailable_headers().items():
        response[header] = value
    return response


class StoreOutageMiddleware:
    """The last net under every view: a store error that no view handled becomes the 503, not a
    500 with a traceback (logged as a warning: the outage is what an operator has to fix)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_store_error(exception):
            return None
        logger.warning("%s %s: a store is unavailable (%r)", request.method, request.path, exception)
        return store_unavailable_response(request)


def api_error_schema() -> dict[str, Any]:
    """The error body as an OpenAPI component, for ``@extend_schema(responses=...)``."""
    return {
        "type": "object",
        "required": ["code", "detail", "fields"],
        "properties": {
            "code": {"type": "string", "example": "invalid"},
            "detail": {"type": "string"},
            "fields": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
                "example": {"products.3.price": ["Input should be greater than or equal to 0"]},
            },
        },
    }
