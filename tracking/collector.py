"""The collector: the Segment HTTP Tracking API, so Segment and RudderStack SDKs work by changing the host.

Plain Django views rather than DRF: this is the hottest path of the platform, and every request
goes straight to ``tracking.ingestion.events_ingest``. Errors are JSON ``{"code", "detail", "fields"}``
like the rest of the API.

While a store is down the collector answers 503 with ``Retry-After`` and appends nothing (Segment
and RudderStack SDKs retry a 5xx), never a 200 for an event it could not append: Redis down, or
PostgreSQL down when the request needs it (a write key no process has seen lately, a visitor
whose consent state is not in Redis). See docs/operating.md.
"""

import base64
import binascii
import zlib
from datetime import datetime
from typing import Any

import msgspec
import redis
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from config.api_errors import STORE_UNAVAILABLE, store_unavailable_headers
from config.store_outages import STORE_ERRORS
from tracking.authentication import cors_any_origin, request_origin_allowed
from tracking.event_schema import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, ONE_LETTER_TYPES
from tracking.event_time import time_in_range
from tracking.ingestion import batch_context_problem, events_ingest
from tracking.selectors import SourceInfo, source_info_for_key

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
BATCH_KINDS = {"batch", "import", "b"}
PATH_TYPES = {"track", "identify", "page", "screen", "group", "alias", *ONE_LETTER_TYPES}


class BatchRequest(msgspec.Struct):
    """A batch call's body with each event left in JSON, for ``events_ingest`` to validate straight
    into an Envelope. A body of another shape goes through ``_decode`` and the full checks."""

    batch: list[msgspec.Raw]
    writeKey: Any = None
    context: Any = None
    sentAt: Any = None


_BATCH_JSON = msgspec.json.Decoder(BatchRequest)
# Nothing was appended: any refusal of Redis (a full one too), or a store that did not answer.
UNAPPENDED_ERRORS: tuple[type[Exception], ...] = (redis.RedisError, *STORE_ERRORS)


class CollectorError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        fields: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.fields = status, code, detail, fields or {}
        self.headers = headers or {}

    def response(self) -> JsonResponse:
        body = {"success": False, "code": self.code, "detail": self.detail, "fields": self.fields}
        return JsonResponse(body, status=self.status, headers=self.headers)


def store_unavailable() -> CollectorError:
    """A store the request needs is down: nothing was appended, the sender retries later."""
    return CollectorError(503, "store_unavailable", STORE_UNAVAILABLE, headers=store_unavailable_headers())


def _too_large(detail: str = "The request body is over the 500 KB limit of a batch.") -> CollectorError:
    return CollectorError(413, "request_too_large", detail, {"body": ["over 500 KB"]})


def _raw_body(request: HttpRequest) -> bytes:
    """The body as sent. With ``Transfer-Encoding: chunked`` there is no Content-Length, and
    Django reads none of it: read the server's stream to its end, up to the limit."""
    # request.META rather than request.headers, which builds a copy of every header on first use.
    declared = request.META.get("CONTENT_LENGTH")
    if declared or "chunked" not in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        if int(declared or 0) > MAX_BATCH_BYTES:
            raise _too_large()
        return request.body
    stream, parts, size = request.META["wsgi.input"], [], 0
    while size <= MAX_BATCH_BYTES and (part := stream.read(MAX_BATCH_BYTES + 1 - size)):
        parts.append(part)
        size += len(part)
    return b"".join(parts)


def _body(request: HttpRequest) -> bytes:
    body = _raw_body(request)
    if len(body) > MAX_BATCH_BYTES:
        raise _too_large()
    if request.META.get("HTTP_CONTENT_ENCODING", "").strip().lower() == "gzip":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            body = inflater.decompress(body, MAX_BATCH_BYTES + 1)
        except zlib.error as exc:
            raise CollectorError(400, "invalid_gzip", f"The body is not valid gzip: {exc}.", BODY_FIELD) from exc
        if len(body) > MAX_BATCH_BYTES or inflater.unconsumed_tail:
            raise _too_large("The request body is over the 500 KB limit once decompressed.")
    return body


BODY_FIELD = {"body": ["not valid"]}


def _decode(body: bytes) -> Any:
    """The body decoded; not JSON, not UTF-8 or nested deeper than the decoder goes is a 400."""
    try:
        return msgspec.json.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise CollectorError(400, "invalid_json", f"The body is not valid JSON: {exc}.", BODY_FIELD) from exc
    except RecursionError as exc:
        raise CollectorError(400, "invalid_json", "The body is nested too deeply.", BODY_FIELD) from exc


def _decode_batch(body: bytes) -> BatchRequest | Any:
    try:
        return _BATCH_JSON.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
        return _decode(body)


WRITE_KEY_FIELD = {"writeKey": ["unknown or revoked"]}


def _source(request: HttpRequest, payload: Any) -> SourceInfo:
    """The source of the request's key: the write key (HTTP Basic user name, or writeKey in the
    body), or the secret key (HTTP Basic user name, or a Bearer header) of a shop's server."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    key: Any = None
    if header[:6].lower() == "basic ":
        try:
            key = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")[0]
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise CollectorError(
                401, "authentication_failed", "The Basic credentials are not valid base64.", WRITE_KEY_FIELD
            ) from exc
    elif header[:7].lower() == "bearer ":
        key = header[7:].strip()
    elif isinstance(payload, dict):
        key = payload.get("writeKey")
    elif isinstance(payload, BatchRequest):
        key = payload.writeKey
    if not isinstance(key, str) or not key:
        raise CollectorError(
            401,
            "not_authenticated",
            "Send the source's write key as the HTTP Basic user name, or as writeKey in the body.",
            {"writeKey": ["is required"]},
        )
    try:
        source = source_info_for_key(key)
    except STORE_ERRORS as exc:
        raise store_unavailable() from exc
    if source is None:
        raise CollectorError(401, "authentication_failed", "Unknown or revoked key.", WRITE_KEY_FIELD)
    return source


def _ingest(request: HttpRequest, payload: Any, kind: str, source: SourceInfo) -> JsonResponse:
    received_at = timezone.now()
    batch_context: dict[str, Any] | None = None
    batch_sent_at = None
    if kind in BATCH_KINDS:
        if isinstance(payload, BatchRequest):
            events: list[Any] = payload.batch
            context, sent_at = payload.context, payload.sentAt
        elif isinstance(payload, dict) and isinstance(payload.get("batch"), list):
            events = payload["batch"]
            context, sent_at = payload.get("context"), payload.get("sentAt")
        else:
            raise CollectorError(
                400, "invalid", 'A batch is {"batch": [events]}.', {"batch": ["must be a list of events"]}
            )
        if len(events) > MAX_BATCH_EVENTS:
            raise CollectorError(
                400,
                "too_many_events",
                f"A batch holds at most 2,500 events; this one has {len(events):,}.",
                {"batch": ["over 2,500 events"]},
            )
        if isinstance(context, dict):
            problem = batch_context_problem(context)
            if problem:
                raise CollectorError(400, "invalid", f"The batch's context {problem}.", {"context": [problem]})
            batch_context = context
        if isinstance(sent_at, str):
            try:
                batch_sent_at = time_in_range(msgspec.convert(sent_at, type=datetime))
            except msgspec.ValidationError:
                batch_sent_at = None
        path_type = None
    else:
        events = [payload]
        path_type = ONE_LETTER_TYPES.get(kind, kind)
    try:
        result = events_ingest(
            source_id=source.id,
            raw_events=events,
            user_ids_trusted=source.by_secret_key,
            secret_key_digest=source.secret_key_digest,
            meta=request.META,
            received_at=received_at,
            path_type=path_type,
            batch_context=batch_context,
            batch_sent_at=batch_sent_at,
        )
    except UNAPPENDED_ERRORS as exc:
        raise store_unavailable() from exc
    return JsonResponse(result.body(batch=path_type is None), status=400 if result.everything_refused else 200)


@csrf_exempt
def collect(request: HttpRequest, kind: str) -> HttpResponse:
    """``POST /v1/<kind>``: track, identify, page, screen, group, alias, batch, import, or their letters."""
    if request.method == "OPTIONS":
        # A preflight carries no key, so it cannot know the source: it lets any origin send, and
        # the request itself is refused, readably, when the source does not allow its origin.
        response = HttpResponse(status=204)
        response["Access-Control-Allow-Origin"] = request.headers.get("Origin", "*")
        response["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        response["Access-Control-Allow-Headers"] = "Content-Type, Authorization, Content-Encoding"
        response["Access-Control-Max-Age"] = "86400"
        response["Vary"] = "Origin"
        return response
    if request.method != "POST":
        return CollectorError(405, "method_not_allowed", "Send events with POST.").response()
    if kind not in PATH_TYPES and kind not in BATCH_KINDS:
        return CollectorError(404, "not_found", f"There is no /v1/{kind} endpoint.").response()
    try:
        body = _body(request)
        payload = _decode_batch(body) if kind in BATCH_KINDS else _decode(body)
        source = _source(request, payload)
        if not request_origin_allowed(request, source.allowed_origins):
            raise CollectorError(
                403,
                "origin_not_allowed",
                f"The origin {request.META['HTTP_ORIGIN']} is not among the source's allowed origins; "
                "nothing was stored. List it in the source's allowed origins (admin).",
                {"Origin": ["not allowed for this source"]},
            )
        answer: HttpResponse = _ingest(request, payload, kind, source)
    except CollectorError as error:
        answer = error.response()
    return cors_any_origin(request, answer)


@csrf_exempt
def pixel(request: HttpRequest, kind: str) -> HttpResponse:
    """``GET /v1/pixel/<kind>?data=<base64 JSON>``: for e-mails and pages without JavaScript. Always
    answers the 1×1 GIF, whatever happened to the event (an image cannot show an error); while a
    store is down, with the collector's 503 and ``Retry-After`` (browsers show the image anyway)."""
    response = HttpResponse(PIXEL, content_type="image/gif")
    response["Cache-Control"] = "no-store"
    try:
        raw = base64.b64decode(request.GET.get("data", "") + "==", altchars=b"-_")
        payload = _decode(raw)
        source = _source(request, payload)
        if kind in PATH_TYPES:
            _ingest(request, payload, kind, source)
    except CollectorError as error:
        response["X-Pz-Event"] = "refused" if error.status != 503 else "unavailable"
        if error.status == 503:
            response.status_code = 503
            for header, value in error.headers.items():
                response[header] = value
    except (binascii.Error, ValueError):
        response["X-Pz-Event"] = "refused"
    return response
