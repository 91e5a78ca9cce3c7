"""The collector in the OpenAPI schema: a drf-spectacular postprocessing hook.

The collector stays plain Django views (it is the hottest path), so drf-spectacular cannot see it;
this hook adds its operations, with the events described from the msgspec structs that validate
them, so the schema (and schemathesis, which tests the API from it) covers every endpoint.
"""

from typing import Any

import msgspec

from config.api_errors import api_error_schema
from tracking.event_schema import MAX_BATCH_EVENTS, Envelope

SINGLE_TYPES = ("track", "identify", "page", "screen", "group", "alias")
REF = "#/components/schemas/{name}"
TAG = "collector"


def _components() -> dict[str, Any]:
    _, components = msgspec.json.schema_components([Envelope], ref_template=REF)
    event = components["Envelope"]
    event["title"] = "CollectorEvent"
    for name in ("timestamp", "originalTimestamp", "sentAt"):
        event["properties"][name] = {
            "anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}],
            "default": None,
            "description": "ISO 8601; without a time zone it is taken as UTC; from 1970 to 2099.",
        }
    return {
        "CollectorEvent": event,
        "CollectorBatch": {
            "type": "object",
            "required": ["batch"],
            "properties": {
                "batch": {
                    "type": "array",
                    "maxItems": MAX_BATCH_EVENTS,
                    "items": {"$ref": REF.format(name="CollectorEvent")},
                },
                "writeKey": {"type": "string", "description": "Or HTTP Basic (the write key as the user name)."},
                "context": {"type": "object", "description": "Merged under each event's own context."},
                "sentAt": {"type": "string", "format": "date-time"},
            },
        },
        "CollectorAnswer": {
            "type": "object",
            "required": ["success", "accepted", "dropped", "rejected"],
            "properties": {
                "success": {"type": "boolean"},
                "accepted": {"type": "integer", "description": "Events appended for storage."},
                "dropped": {
                    "type": "object",
                    "additionalProperties": {"type": "integer"},
                    "description": "Events left out on purpose, by reason (bot, no_consent, suppressed).",
                },
                "rejected": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["index", "messageId", "field", "reason"],
                        "properties": {
                            "index": {"type": "integer"},
                            "messageId": {"type": ["string", "null"]},
                            "field": {"type": "string", "example": "properties.price"},
                            "reason": {"type": "string"},
                        },
                    },
                },
            },
        },
        "CollectorError": {
            **api_error_schema(),
            "required": ["success", "code", "detail", "fields"],
            "properties": {"success": {"type": "boolean", "const": False}, **api_error_schema()["properties"]},
        },
    }


def _answers() -> dict[str, Any]:
    def body(name: str, description: str) -> dict[str, Any]:
        return {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": REF.format(name=name)}}},
        }

    return {
        "200": body("CollectorAnswer", "Every accepted event is stored; refused ones are listed in `rejected`."),
        "400": body("CollectorError", "Not JSON, or every event refused (`fields` names each one's field)."),
        "401": body("CollectorError", "No write key, or an unknown or revoked one."),
        "413": body("CollectorError", "The body is over 500 KB (once decompressed)."),
    }


def _post(operation_id: str, summary: str, schema: str, description: str) -> dict[str, Any]:
    return {
        "post": {
            "operationId": operation_id,
            "summary": summary,
            "description": description,
            "tags": [TAG],
            "security": [{"writeKey": []}, {}],
            "requestBody": {
                "required": True,
                "content": {
                    media: {"schema": {"$ref": REF.format(name=schema)}} for media in ("application/json", "text/plain")
                },
            },
            "responses": _answers(),
        }
    }


def _pixel() -> dict[str, Any]:
    return {
        "get": {
            "operationId": "collector_pixel",
            "summary": "An event as a 1×1 GIF (e-mails, pages without JavaScript)",
            "description": "Always answers the GIF; `X-Pz-Event: refused` when the event was not accepted.",
            "tags": [TAG],
            "security": [{}],
            "parameters": [
                {
                    "name": "kind",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "enum": list(SINGLE_TYPES)},
                },
                {
                    "name": "data",
                    "in": "query",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "The event with its `writeKey`, as URL-safe base64 JSON.",
                },
            ],
            "responses": {
                "200": {
                    "description": "The GIF.",
                    "content": {"image/gif": {"schema": {"type": "string", "format": "binary"}}},
                }
            },
        }
    }


def collector_paths(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular's postprocessing hook: the collector's operations and their schemas."""
    result.setdefault("components", {}).setdefault("schemas", {}).update(_components())
    paths = result.setdefault("paths", {})
    paths["/v1/batch"] = _post(
        "collector_batch",
        "Send a batch of events",
        "CollectorBatch",
        "Segment's batch call (also `/v1/import`). Each event is validated on its own: a refused one is listed "
        "with its field and reason, and its neighbours are stored.",
    )
    for kind in SINGLE_TYPES:
        paths[f"/v1/{kind}"] = _post(
            f"collector_{kind}", f"Send one event: {kind}", "CollectorEvent", f"Segment's {kind} call."
        )
    paths["/v1/pixel/{kind}"] = _pixel()
    result.setdefault("tags", []).append({"name": TAG, "description": "Segment's HTTP Tracking API."})
    return result
