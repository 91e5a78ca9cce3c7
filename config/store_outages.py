"""Which errors mean that PostgreSQL, Redis or the broker did not answer (not that the request was wrong).

An endpoint that can do without the failed store catches ``STORE_ERRORS`` and answers in a
degraded way (the collector keeps accepting on Redis alone, the recommendation API answers from
what the process holds in memory); the others let them through to ``config.api_errors``, which
answers 503 with ``Retry-After`` and ``{"code": "store_unavailable", ...}`` (or the HTML 503 page),
never a 500. The request's writes are rolled back with it (services are ``@transaction.atomic``),
so nothing is half stored. The table of what each endpoint does is in docs/operating.md.
"""

import psycopg
import redis
from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerError

STORE_ERRORS: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    psycopg.OperationalError,  # raised as they are by the hot reads on psycopg's own cursor (config/sql.py)
    psycopg.InterfaceError,
    redis.ConnectionError,
    redis.TimeoutError,
    BrokerError,
)
# Long enough for a restart of either store; SDKs that read the header wait this long, the
# others back off on their own.
RETRY_AFTER_SECONDS = 30


def is_store_error(exc: BaseException) -> bool:
    return isinstance(exc, STORE_ERRORS)
