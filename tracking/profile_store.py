"""The real-time profiles a batch of events touches: plain rows, locked for the transaction, saved in bulk.

On PostgreSQL they are read and written with psycopg's own cursor (binary parameters, no Django
model instances: building those, and decoding every JSON column of every locked profile, was the
larger part of the consumer's Python time). A JSON column is decoded only when the processing reads
it, and written back only then. Elsewhere (SQLite) the same rows go through the ORM.
"""

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec

from config.sql import bound_cursor, postgres
from tracking import live_mirror
from tracking.models import Profile
from tracking.profile_rules import SessionState

SCALARS = [
    "user_id", "anonymous_id", "merged_into_id", "first_seen_at", "last_seen_at", "session_id", "session_started_at",
    "sessions", "page_views", "product_views", "adds", "removes", "orders", "cancellations", "revenue",
    "last_order_at", "last_order_id",
]  # fmt: skip
JSONS = ["recently_viewed", "cart", "category_affinity", "brand_affinity", "traits"]
_TYPES = {
    "user_id": "text", "anonymous_id": "text", "merged_into_id": "bigint", "first_seen_at": "timestamptz",
    "last_seen_at": "timestamptz", "session_id": "text", "session_started_at": "timestamptz", "sessions": "integer",
    "page_views": "integer", "product_views": "integer", "adds": "integer", "removes": "integer", "orders": "integer",
    "cancellations": "integer", "revenue": "numeric", "last_order_at": "timestamptz", "last_order_id": "text",
}  # fmt: skip
_EMPTY: dict[str, Any] = {"recently_viewed": list, "cart": dict, "category_affinity": dict, "brand_affinity": dict}


POSTGRES_FAST_PATH = True  # the tests turn it off to compare the fast path with the generic one


def postgres_fast_path() -> bool:
    """Whether to use psycopg's cursor, arrays and COPY (PostgreSQL) rather than the ORM (anywhere)."""
    return POSTGRES_FAST_PATH and postgres()


def _json_column(name: str) -> property:
    """A JSON column decoded on first read (from the text PostgreSQL sent); once read, it is written back."""
    raw_slot, value_slot = f"_{name}_raw", f"_{name}"

    def read(row: "ProfileRow") -> Any:
        value = getattr(row, value_slot)
        if value is None:
            value = msgspec.json.decode(getattr(row, raw_slot))
            setattr(row, value_slot, value)
        return value

    def write(row: "ProfileRow", value: Any) -> None:
        setattr(row, value_slot, value)

    return property(read, write)


class ProfileRow:
    """One visitor's profile (the columns of ``Profile``) as the processing changes it."""

    __slots__ = (
        "id", "key", *SCALARS, "merged_into",
        *(f"_{name}" for name in JSONS), *(f"_{name}_raw" for name in JSONS),
    )  # fmt: skip

    id: int | None
    key: str
    user_id: str
    anonymous_id: str
    merged_into_id: int | None
    merged_into: "ProfileRow | None"  # set when merged in this batch (the target may be new: no id yet)
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    session_id: str
    session_started_at: datetime | None
    sessions: int
    page_views: int
    product_views: int
    adds: int
    removes: int
    orders: int
    cancellations: int
    revenue: Decimal
    last_order_at: datetime | None
    last_order_id: str
    _recently_viewed: Any  # decoded (None: not read yet)
    _cart: Any
    _category_affinity: Any
    _brand_affinity: Any
    _traits: Any
    _recently_viewed_raw: str | None  # as PostgreSQL sent it
    _cart_raw: str | None
    _category_affinity_raw: str | None
    _brand_affinity_raw: str | None
    _traits_raw: str | None

    recently_viewed = _json_column("recently_viewed")
    cart = _json_column("cart")
    category_affinity = _json_column("category_affinity")
    brand_affinity = _json_column("brand_affinity")
    traits = _json_column("traits")

    def __init__(self, key: str, scalars: Sequence[Any] | None = None, jsons: Sequence[Any] | None = None) -> None:
        """A new profile (no ``scalars``), or a stored one: with ``jsons`` decoded, or without them
        (their JSON texts then go to the ``_<name>_raw`` slots, see ``_load_postgres``)."""
        self.id = None
        self.key = key
        self.merged_into = None
        if scalars is None:
            kind, _, value = key.partition(":")
            scalars = (
                value if kind == "u" else "", value if kind == "a" else "", None, None, None, "", None,
                0, 0, 0, 0, 0, 0, 0, Decimal("0"), None, "",
            )  # fmt: skip
            jsons = ([], {}, {}, {}, {})
        (
            self.user_id, self.anonymous_id, self.merged_into_id, self.first_seen_at, self.last_seen_at,
            self.session_id, self.session_started_at, self.sessions, self.page_views, self.product_views,
            self.adds, self.removes, self.orders, self.cancellations, self.revenue, self.last_order_at,
            self.last_order_id,
        ) = scalars  # the order of SCALARS  # fmt: skip
        unread = (None, None, None, None, None)
        self._recently_viewed, self._cart, self._category_affinity, self._brand_affinity, self._traits = jsons or unread
        self._recently_viewed_raw = self._cart_raw = self._category_affinity_raw = None
        self._brand_affinity_raw = self._traits_raw = None

    def json_read(self, name: str) -> bool:
        """Whether a JSON column was read (and so may have changed)."""
        return getattr(self, f"_{name}") is not None

    def target_id(self) -> int | None:
        """The id of the profile it was merged into (a target new in this batch has one once saved)."""
        return self.merged_into.id if self.merged_into is not None else self.merged_into_id


class LockedProfiles:
    """The profiles a batch touches, locked for the transaction (in key order: two consumers never
    wait on each other in a cycle), created on first use."""

    def __init__(self, keys: Iterable[str]) -> None:
        wanted = sorted(set(keys))
        rows = _load_postgres(wanted) if postgres_fast_path() else _load_orm(wanted)
        self.by_key: dict[str, ProfileRow] = {row.key: row for row in rows}
        self.new: dict[str, ProfileRow] = {}
        self.sessions: dict[str, SessionState] = {}

    def get(self, key: str) -> ProfileRow:
        row = self.by_key.get(key)
        if row is None:
            row = self.by_key[key] = self.new[key] = ProfileRow(key)
        return row

    def session(self, row: ProfileRow) -> SessionState:
        state = self.sessions.get(row.key)
        if state is None:
            state = self.sessions[row.key] = SessionState(
                row.session_id, row.session_started_at, row.last_seen_at, row.sessions
            )
        return state

    def save(self) -> None:
        for key, state in self.sessions.items():
            row = self.by_key[key]
            row.session_id, row.session_started_at, row.sessions = state.session_id, state.started_at, state.sessions
        new = list(self.new.values())
        if postgres_fast_path():
            _insert_postgres(new)
        else:
            _insert_orm(new)
        # A profile new in this batch may have been merged into another new one: it has an id now.
        changed = [row for row in self.by_key.values() if row.key not in self.new or row.merged_into is not None]
        if postgres_fast_path():
            _update_postgres(changed)
        else:
            _update_orm(changed)
        # Still under the rows' locks: see tracking.live_mirror.
        live_mirror.mirror_write(self._mirror_entries())
        live_mirror.sessions_mark(self._sessions_changed())

    def _sessions_changed(self) -> list[str]:
        """The profiles whose recent views or cart this batch may have changed."""
        if not live_mirror.mirrored():
            return []
        return [
            row.key
            for row in self.by_key.values()
            if row.merged_into is None
            and row.merged_into_id is None
            and (row.json_read("recently_viewed") or row.json_read("cart"))
        ]

    def _mirror_entries(self) -> dict[str, bytes]:
        if not live_mirror.mirrored():
            return {}
        keys = {row.id: row.key for row in self.by_key.values()}
        entries = {}
        for row in self.by_key.values():
            if row.merged_into is not None or row.merged_into_id is not None:
                target = row.merged_into.key if row.merged_into is not None else keys.get(row.merged_into_id)
                if target is not None:  # else merged before, into a profile this batch did not touch
                    entries[row.key] = live_mirror.entry_of_pointer(target)
                continue
            jsons = [_json_value(row, name) for name in live_mirror.LIVE_JSONS]
            entries[row.key] = live_mirror.entry_of_profile(jsons, row.orders, row.last_seen_at, row.sessions)
        return entries


def _json_value(row: ProfileRow, name: str) -> Any:
    """A JSON column as it is, decoded or still the text PostgreSQL sent (``msgspec.Raw``)."""
    if row.json_read(name):
        return getattr(row, name)
    raw = getattr(row, f"_{name}_raw")
    return msgspec.Raw(raw.encode()) if raw is not None else getattr(row, name)


_SELECT = (
    f"SELECT key, {', '.join(SCALARS)}, id, {', '.join(f'{name}::text' for name in JSONS)} "  # noqa: S608 (constants)
    "FROM tracking_profile WHERE key = ANY(%b::text[]) ORDER BY key FOR UPDATE"
)


def _load_postgres(keys: list[str]) -> list[ProfileRow]:
    rows = []
    width = len(SCALARS)
    with bound_cursor() as cursor:
        cursor.execute(_SELECT, [keys], prepare=True, binary=True)  # binary: timestamps decoded in C
        for record in cursor:
            row = ProfileRow(record[0], record[1 : width + 1])
            row.id = record[width + 1]
            (
                row._recently_viewed_raw, row._cart_raw, row._category_affinity_raw, row._brand_affinity_raw,
                row._traits_raw,
            ) = record[width + 2 :]  # the order of JSONS  # fmt: skip
            rows.append(row)
    return rows


def _load_orm(keys: list[str]) -> list[ProfileRow]:
    names = ["merged_into" if name == "merged_into_id" else name for name in SCALARS]
    rows = []
    for record in (
        Profile.objects.select_for_update()
        .filter(key__in=keys)
        .order_by("key")
        .values_list("key", "id", *names, *JSONS)
    ):
        row = ProfileRow(record[0], record[2 : 2 + len(SCALARS)], record[2 + len(SCALARS) :])
        row.id = record[1]
        rows.append(row)
    return rows


def _json(row: ProfileRow, name: str) -> str | None:
    """The column's new JSON text, or None when the processing never read it (left as stored)."""
    return msgspec.json.encode(getattr(row, name)).decode() if row.json_read(name) else None


def _insert_postgres(rows: Sequence[ProfileRow]) -> None:
    if not rows:
        return
    columns: list[list[Any]] = [[row.key for row in rows]]
    columns += [[None if name == "merged_into_id" else getattr(row, name) for row in rows] for name in SCALARS]
    columns += [[msgspec.json.encode(getattr(row, name)).decode() for row in rows] for name in JSONS]
    arrays = ", ".join(["%b::text[]", *(f"%b::{_TYPES[name]}[]" for name in SCALARS), *("%b::text[]" for _ in JSONS)])
    values = ", ".join(["key", *SCALARS, *(f"{name}::jsonb" for name in JSONS)])
    sql = (
        f"INSERT INTO tracking_profile (key, {', '.join(SCALARS)}, {', '.join(JSONS)}, updated_at) "  # noqa: S608
        f"SELECT {values}, now() FROM unnest({arrays}) AS v(key, {', '.join(SCALARS)}, {', '.join(JSONS)}) "
        "RETURNING key, id"
    )
    by_key = {row.key: row for row in rows}
    with bound_cursor() as cursor:
        cursor.execute(sql, columns)
        for key, row_id in cursor.fetchall():
            by_key[key].id = row_id


def _update_postgres(rows: Sequence[ProfileRow]) -> None:
    """One UPDATE ... FROM unnest() for all changed profiles (linear in the rows; Django's
    bulk_update writes a CASE per column). A JSON column not read keeps its stored value."""
    if not rows:
        return
    columns: list[list[Any]] = [[row.id for row in rows]]
    columns += [
        [row.target_id() for row in rows] if name == "merged_into_id" else [getattr(row, name) for row in rows]
        for name in SCALARS
    ]
    columns += [[_json(row, name) for row in rows] for name in JSONS]
    arrays = ", ".join(["%b::bigint[]", *(f"%b::{_TYPES[name]}[]" for name in SCALARS), *("%b::text[]" for _ in JSONS)])
    assignments = ", ".join(
        [
            *(f"{name} = v.{name}" for name in SCALARS),
            *(f"{name} = coalesce(v.{name}::jsonb, p.{name})" for name in JSONS),
        ]
    )
    sql = (
        f"UPDATE tracking_profile AS p SET {assignments}, updated_at = now() "  # noqa: S608 (constants)
        f"FROM unnest({arrays}) AS v(id, {', '.join(SCALARS)}, {', '.join(JSONS)}) WHERE p.id = v.id"
    )
    with bound_cursor() as cursor:
        cursor.execute(sql, columns)


def _model(row: ProfileRow) -> Profile:
    values = {name: getattr(row, name) for name in (*SCALARS, *JSONS)}
    values["merged_into_id"] = row.target_id()
    return Profile(id=row.id, key=row.key, **values)


def _insert_orm(rows: Sequence[ProfileRow]) -> None:
    created = Profile.objects.bulk_create([_model(row) for row in rows], batch_size=500)
    for row, profile in zip(rows, created, strict=True):
        row.id = profile.pk


def _update_orm(rows: Sequence[ProfileRow]) -> None:
    Profile.objects.bulk_update([_model(row) for row in rows], [*SCALARS, *JSONS], batch_size=100)
