"""Suppression where personal data is written, not only at the edge.

The collector drops the events of erased people, but an event it accepted before an erasure may
be processed after it: the writers of personal data keyed by a visitor (the event processing) ask
``suppressed_ids`` in the transaction that writes, and drop what it names.

A check and an erasure running at the same moment are ordered by one PostgreSQL advisory lock. A
writer holds it shared from its check to its commit (``suppressed_ids`` takes it); an erasure
takes it exclusively for the short transaction that records the suppression
(``consent.services.subject_erase``), and erases the stores after that commit. So either the
writer committed before the suppression was recorded, and the erasure, reading the stores later,
deletes what it wrote; or the writer's check, which comes after its lock, sees the suppression.

One lock for everyone rather than one per person: a batch touches thousands of people, and each
lock held would take a slot of PostgreSQL's shared lock table (a few thousand in all), while an
erasure is rare and holds it only while it inserts its suppression rows. On SQLite (the embedded
mode) writing transactions begin IMMEDIATE (``config.settings``) and so run one at a time: no lock.
"""

from collections.abc import Iterable

from django.db import connection

from config import sql
from consent.models import Suppression
from consent.selectors import subject_hash

ERASURE_LOCK = int.from_bytes(b"pz:erase", "big")  # the advisory lock's key: any bigint no one else uses
CHUNK = 1000  # hashes per query on SQLite, well under its limit of parameters in one statement


def writers_hold_off() -> None:
    """Wait for the writers checking suppression now to commit, and keep new ones waiting until
    this transaction ends (an erasure's suppression, see the module)."""
    _lock("SELECT pg_advisory_xact_lock(%s)")


def _lock(statement: str) -> None:
    if not connection.in_atomic_block:
        raise RuntimeError("the erasure lock is a transaction's: take it inside transaction.atomic()")
    if sql.postgres():
        sql.fetch_all(statement, (ERASURE_LOCK,))


def suppressed_ids(*, user_ids: Iterable[str], anonymous_ids: Iterable[str]) -> tuple[set[str], set[str]]:
    """Which of these user ids and anonymous ids are suppressed (erased, and not consenting since):
    one query, after which an erasure waits for this transaction to end (see the module)."""
    kinds = {subject_hash("user", u): ("user", u) for u in user_ids}
    kinds |= {subject_hash("anonymous", a): ("anonymous", a) for a in anonymous_ids}
    if not kinds:
        return set(), set()
    _lock("SELECT pg_advisory_xact_lock_shared(%s)")
    if sql.postgres():  # a batch's thousands of ids: one bound array
        found = [h for (h,) in sql.fetch_all(_SUPPRESSED_SQL, (list(kinds),))]
    else:
        hashes = list(kinds)
        found = [
            h
            for start in range(0, len(hashes), CHUNK)
            for h in Suppression.objects.filter(subject_hash__in=hashes[start : start + CHUNK]).values_list(
                "subject_hash", flat=True
            )
        ]
    users = {kinds[h][1] for h in found if kinds[h][0] == "user"}
    return users, {kinds[h][1] for h in found if kinds[h][0] == "anonymous"}


def suppressed_hashes() -> list[str]:
    """Every suppressed person's hash, for a writer that read people's data before this
    transaction (a model training): after it, an erasure waits for this transaction to end."""
    _lock("SELECT pg_advisory_xact_lock_shared(%s)")
    return list(Suppression.objects.values_list("subject_hash", flat=True))


_SUPPRESSED_SQL = "SELECT subject_hash FROM consent_suppression WHERE subject_hash = ANY(%s)"
