"""Raw SQL on Django's connection, for the few hot reads where the ORM's cost dominates.

Compiling a queryset and building its rows costs 0.3-0.5 ms of Python per query, more than the
query itself for a lookup by key. The recommendation API makes two such reads per request (the
visitor's live profile, the cards of the products shown): on PostgreSQL they go through
psycopg's own cursor, with server-side binding and prepared statements; elsewhere through the ORM.
"""

from typing import Any

import psycopg
from django.db import connection


def postgres() -> bool:
    return connection.vendor == "postgresql"


def bound_cursor() -> psycopg.Cursor[Any]:
    """A psycopg cursor with server-side parameter binding, in Django's connection and transaction.

    Django's psycopg backend binds parameters on the client: each array given to unnest() would be
    rendered to an SQL literal in Python (a third of the consumer's time, once). psycopg's own
    cursor sends them as parameters, encoded in C."""
    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)  # not connection.cursor(): Django sets ClientCursor as its factory


def fetch_all(sql: str, params: tuple[Any, ...] | list[Any]) -> list[tuple[Any, ...]]:
    """Rows of one statement, prepared by the server; PostgreSQL only."""
    with bound_cursor() as cursor:
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchall()
