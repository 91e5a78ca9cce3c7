"""``/healthz``: is this process able to serve? 200 when every configured backend answers, 503 otherwise.

Redis's check also shows whether it keeps accepted events (``config.redis_persistence``) and the
figures apps register with ``redis_figure_register`` in their ``AppConfig.ready`` (tracking: how
many events wait in the dead-letter stream), read with the check's own client. A Redis that may
lose events answers 200 with ``warnings``, not 503: a load balancer would take every web worker
out for a configuration warning, and the collector would then refuse every event instead of
risking some.
"""

from collections.abc import Callable
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config.redis_persistence import SETTINGS_NEEDED, redis_persistence

_REDIS_FIGURES: dict[str, Callable[[redis.Redis], object]] = {}


def redis_figure_register(name: str, read: Callable[[redis.Redis], object]) -> None:
    """Show ``read(client)`` as ``name`` in Redis's check (config knows no app: apps register)."""
    _REDIS_FIGURES[name] = read


def _database_state() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means "not serving"; the class name says which.
        return {"status": "down", "error": type(exc).__name__, "vendor": connection.vendor}
    return {"status": "up", "vendor": connection.vendor}


def _redis_state() -> dict[str, Any]:
    if not settings.REDIS_URL:
        return {"status": "not_configured"}
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        persistence = redis_persistence(client)
        figures = {name: read(client) for name, read in _REDIS_FIGURES.items()}
    except redis.RedisError as exc:
        return {"status": "down", "error": type(exc).__name__}
    finally:
        client.close()
    state: dict[str, Any] = {"status": "up", "persistence": persistence.as_dict(), **figures}
    if persistence.problems:
        state["warnings"] = [*persistence.problems, f"configure Redis with: {SETTINGS_NEEDED}"]
    return state


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _database_state(), "redis": _redis_state()}
    healthy = all(check["status"] != "down" for check in checks.values())
    body: dict[str, Any] = {"status": "ok" if healthy else "unavailable", "checks": checks}
    if warnings := [f"{name}: {text}" for name, check in checks.items() for text in check.get("warnings", [])]:
        body["warnings"] = warnings
    return JsonResponse(body, status=200 if healthy else 503)
