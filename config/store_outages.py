"""Which errors mean that PostgreSQL, Redis or the broker did not answer (not that the work was wrong),
and how the long-running processes wait for them.

In a request, an endpoint that can do without the failed store catches ``STORE_ERRORS`` and answers in a
degraded way (the collector keeps accepting on Redis alone, the recommendation API answers from
what the process holds in memory); the others let them through to ``config.api_errors``, which
answers 503 with ``Retry-After`` and ``{"code": "store_unavailable", ...}`` (or the HTML 503 page),
never a 500. The request's writes are rolled back with it (services are ``@transaction.atomic``),
so nothing is half stored. The table of what each endpoint does is in docs/operating.md.

A long-running process (the stream consumers, ``score_sessions``, the exposure flusher): a store
that cannot be reached is not a fault of the work in hand. The work waits, with a growing pause
(``Outage``), and is tried again until the store answers; only a failure that is not an outage may
be blamed on the work (see ``tracking.consumer``). The log says when an outage starts and when it
ends, one line each, however many tries it took.
"""

import contextlib
import logging
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
import redis
from django.db import InterfaceError, OperationalError, connections
from kombu.exceptions import OperationalError as BrokerError

STORE_ERRORS: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    psycopg.OperationalError,  # raised as they are by the hot reads on psycopg's own cursor (config/sql.py)
    psycopg.InterfaceError,
    redis.ConnectionError,  # BusyLoadingError (a Redis starting) included
    redis.TimeoutError,
    redis.exceptions.ReadOnlyError,  # a replica promoted under the client
    BrokerError,
)
# Long enough for a restart of either store; SDKs that read the header wait this long, the
# others back off on their own.
RETRY_AFTER_SECONDS = 30


def is_store_error(exc: BaseException) -> bool:
    if isinstance(exc, STORE_ERRORS):
        return True
    # A Redis restarted without its data has lost the consumers' group too: the store, not the work.
    return isinstance(exc, redis.ResponseError) and str(exc).startswith("NOGROUP")


T = TypeVar("T")


class Outage:
    """A loop's view of the stores being down: ``wait(error)`` after a failed try, ``over()``
    after a successful one. The pause doubles from ``first`` to ``longest`` seconds."""

    def __init__(self, logger: logging.Logger, what: str, *, first: float = 0.1, longest: float = 5.0) -> None:
        self.logger, self.what = logger, what
        self.first, self.longest = first, longest
        self.pause = first
        self.started: float | None = None
        self.tries = 0

    @property
    def ongoing(self) -> bool:
        return self.started is not None

    def wait(self, error: BaseException, *, stop: Callable[[], bool] = lambda: False) -> None:
        """Log the outage if it is new, drop the database connections (a new one is opened on the
        next query), and pause before the next try (less if ``stop()`` turns true)."""
        if self.started is None:
            self.started = time.monotonic()
            message = " ".join(str(error).split())  # one line, whatever the driver's message holds
            self.logger.error(
                "%s: a store is unreachable (%s: %s); retrying until it is back",
                self.what,
                type(error).__name__,
                message,
            )
        self.tries += 1
        with contextlib.suppress(Exception):  # a broken connection may fail to close: it is dropped all the same
            connections.close_all()
        deadline = time.monotonic() + self.pause
        while not stop() and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.1))
        self.pause = min(self.pause * 2, self.longest)

    def over(self) -> None:
        if self.started is None:
            return
        self.logger.warning(
            "%s: the stores answer again after %.1f s (%d tries)",
            self.what,
            time.monotonic() - self.started,
            self.tries,
        )
        self.started, self.tries, self.pause = None, 0, self.first


def retried(call: Callable[[], T], *, outage: Outage, stop: Callable[[], bool] = lambda: False) -> T:
    """``call()``, tried again while it fails on an outage (unless ``stop()``)."""
    while True:
        try:
            result = call()
        except Exception as exc:
            if not is_store_error(exc) or stop():
                raise
            outage.wait(exc, stop=stop)
            continue
        outage.over()
        return result
