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


def fetch_all(sql: str, params: tuple[Any, ...] | list[Any]) -> list[tuple[Any, ...]]:
    """Rows of one statement, prepared by the server after a few uses; PostgreSQL only.

    Runs in Django's connection (and transaction): psycopg's plain cursor, not Django's, whose
    factory binds on the client."""
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchall()
