"""A NUL character in a URL's path or query string is refused before any view sees it.

PostgreSQL stores NUL in neither text nor JSON: a ``%00`` that reaches a query (a SKU in the path,
a ``userId`` or an admin search in the query string) would fail it with a 500. Bodies are checked
by the parsers (``config.parsers``, ``tracking.ingestion``)."""

from collections.abc import Callable
from urllib.parse import parse_qsl

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

from config.api_errors import api_error_body, is_api_path
from config.input_errors import NUL_REASON


class NulCharacterMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        query = request.META.get("QUERY_STRING", "")
        if "\x00" not in request.path and "%00" not in query and "\x00" not in query:
            return self.get_response(request)
        fields = {"path": [NUL_REASON]} if "\x00" in request.path else {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            if "\x00" in name or "\x00" in value:
                fields.setdefault(name.replace("\x00", "") or "query", [NUL_REASON])
        if not is_api_path(request):
            return HttpResponseBadRequest("A NUL character (%00) in the address.")
        body = api_error_body(code="invalid", detail="The address holds a NUL character.", fields=fields)
        return JsonResponse(body, status=400)
