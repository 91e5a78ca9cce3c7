"""Replaying the public data sets through ingestion: the converters, the consent import, the command.

The command tests cut slices of the real files at run time and compute what should be stored from
the raw rows, independently of the code under test.
"""

import csv
import gzip
import re
from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db.models import Count, Sum
from hypothesis import given
from hypothesis import strategies as st
from pytest_django import DjangoAssertNumQueries

from consent.exceptions import ConsentError
from consent.models import ConsentRecord
from consent.selectors import consent_allows, consent_gate
from consent.services import consent_bulk_import, consent_record, subject_erase, subject_link
from consent.subjects import Subject
from personalization.online_retail import RetailInvoice, RetailLine
from tests.conftest import Commit, write_online_retail
from tracking.models import Event, IngestCount, Order, Profile, Source
from tracking.replay import ReplayError, RowCounts, batches, invoice_events, read_rees46, rees46_event

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

REES46 = settings.PZ_DATASETS_DIR / "rees46_oct2019_head" / "events.csv.gz"
REES46_HEADER = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
# Enough rows for guest checkouts, cancellations, postage and a zero price (UCI), and for add-to-carts
# and purchases (REES46): the first 300 rows of either have none of some of them.
UCI_ROWS = 1500
REES46_ROWS = 1000


def _head(source: Path, target: Path, rows: int) -> list[str]:
    """Write the header and the first ``rows`` data rows of a gzipped CSV; return the data lines."""
    with gzip.open(source, "rt", encoding="utf-8", newline="") as handle:
        lines = [next(handle) for _ in range(rows + 1)]
    with gzip.open(target, "wt", encoding="utf-8", newline="") as out:
        out.writelines(lines)
    return lines[1:]


@pytest.fixture
def retail_slice(tmp_path: Path, online_retail_path: Path) -> tuple[Path, list[list[str]]]:
    path = tmp_path / "retail.csv.gz"
    return path, list(csv.reader(_head(online_retail_path, path, UCI_ROWS)))


@pytest.fixture
def rees46_slice(tmp_path: Path) -> tuple[Path, list[list[str]]]:
    if not REES46.is_file():
        pytest.fail(f"The REES46 file is missing at {REES46}; set PZ_DATASETS_DIR.")
    path = tmp_path / "rees46.csv.gz"
    return path, list(csv.reader(_head(REES46, path, REES46_ROWS)))


def write_rees46(path: Path, rows: list[str]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8", newline="") as handle:
        handle.write("\n".join([REES46_HEADER, *rows]) + "\n")
    return path


def replay(dataset: str, path: Path, *args: str) -> str:
    out = StringIO()
    call_command("replay_events", dataset, str(path), "--no-progress", *args, stdout=out)
    return out.getvalue()


def stored_by_name() -> dict[str, int]:
    return dict(Event.objects.values_list("event").annotate(n=Count("id")).order_by())


def ingest_counts() -> dict[str, int]:
    return dict(IngestCount.objects.values_list("outcome").annotate(n=Sum("count")).order_by())


# --- what the slices should give, from the raw rows --------------------------------------------

PRODUCT_CODE = re.compile(r"^(\d{5}[A-Z]{0,2}|DCGS[0-9A-Z]+)$")


def uci_expected(rows: list[list[str]]) -> dict[str, Any]:
    """The documented rules of personalization.online_retail, read plainly."""
    lines: Counter[str] = Counter()
    subjects = set()
    for invoice, code, description, quantity, _, price, customer, _ in rows:
        cancelled = invoice.startswith("C")
        if not PRODUCT_CODE.match(code.strip().upper()) or Decimal(price) <= 0 or not description.strip():
            continue
        if not (int(quantity) < 0 if cancelled else int(quantity) > 0):
            continue
        lines[invoice] += 1
        subjects.add(("u", customer.removesuffix(".0")) if customer else ("a", f"uci-guest-{invoice}"))
    completed = {invoice: n for invoice, n in lines.items() if not invoice.startswith("C")}
    events = {
        "Product Added": sum(completed.values()),
        "Order Completed": len(completed),
        "Order Cancelled": len(lines) - len(completed),
    }
    return {"events": events, "orders": set(lines), "subjects": subjects}


def rees46_expected(rows: list[list[str]]) -> dict[str, Any]:
    names = {"view": "Product Viewed", "cart": "Product Added", "purchase": "Order Completed"}
    return {
        "events": dict(Counter(names[row[1]] for row in rows)),
        "subjects": {row[7] for row in rows},
        "orders": sum(1 for row in rows if row[1] == "purchase"),
    }


# --- the converters ----------------------------------------------------------------------------

PLACED = datetime(2010, 12, 1, 8, 26, tzinfo=UTC)


def test_an_invoice_becomes_its_add_to_carts_then_its_order() -> None:
    invoice = RetailInvoice(
        "536365",
        PLACED,
        False,
        "17850",
        "United Kingdom",
        [
            RetailLine("85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 6, Decimal("2.55")),
            RetailLine("71053", "WHITE METAL LANTERN", 2, Decimal("3.39")),
        ],
    )
    holder = {"product_id": "85123A", "name": "WHITE HANGING HEART T-LIGHT HOLDER", "price": 2.55, "quantity": 6}
    lantern = {"product_id": "71053", "name": "WHITE METAL LANTERN", "price": 3.39, "quantity": 2}
    common = {"type": "track", "userId": "17850", "timestamp": "2010-12-01T08:26:00+00:00"}
    added = {**common, "event": "Product Added"}
    assert invoice_events(invoice) == [
        {**added, "messageId": "uci-536365-1-added", "properties": {**holder, "currency": "GBP"}},
        {**added, "messageId": "uci-536365-2-added", "properties": {**lantern, "currency": "GBP"}},
        {
            **common,
            "event": "Order Completed",
            "messageId": "uci-536365-order",
            "properties": {
                "order_id": "536365",
                "products": [holder, lantern],
                "revenue": 22.08,
                "currency": "GBP",
                "country": "United Kingdom",
            },
        },
    ]  # fmt: skip


def test_a_guest_cancellation_becomes_one_order_cancelled() -> None:
    invoice = RetailInvoice(
        "C536379",
        PLACED,
        True,
        None,
        "United Kingdom",
        [RetailLine("71053", "WHITE METAL LANTERN", 2, Decimal("3.39"))],
    )
    (event,) = invoice_events(invoice)
    assert event["event"] == "Order Cancelled"
    assert (event["anonymousId"], "userId" in event, event["messageId"]) == (
        "uci-guest-C536379",
        False,
        "uci-C536379-order",
    )
    assert event["properties"]["order_id"] == "C536379"
    assert event["properties"]["products"] == [
        {"product_id": "71053", "name": "WHITE METAL LANTERN", "price": 3.39, "quantity": 2}
    ]
    assert event["properties"]["revenue"] == 6.78


def rees46_row(line: str) -> dict[str, str]:
    return dict(zip(REES46_HEADER.split(","), next(csv.reader([line])), strict=True))


def test_rees46_rows_become_views_adds_and_orders() -> None:
    view = rees46_row("2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,72d7-s1")
    assert rees46_event(view, 1) == {
        "type": "track",
        "event": "Product Viewed",
        "messageId": "rees46-1-view",
        "timestamp": "2019-10-01T00:00:00+00:00",
        "anonymousId": "rees46-541312140",
        "properties": {"product_id": "44600062", "price": 35.79, "quantity": 1, "brand": "shiseido"},
        "context": {"pz": {"dataset_session": "72d7-s1"}},
    }
    cart = rees46_row("2019-10-01 00:01:02 UTC,cart,1307067,20530,computers.notebook,,251.74,550050854,s2")
    added = rees46_event(cart, 7)
    assert added is not None and (added["event"], added["messageId"]) == ("Product Added", "rees46-7-cart")
    assert added["properties"] == {
        "product_id": "1307067",
        "price": 251.74,
        "quantity": 1,
        "category": "computers.notebook",
    }
    purchase = rees46_row(
        "2019-10-01 00:02:14 UTC,purchase,1004856,20530,electronics.smartphone,samsung,130.76,543272936,s3"
    )
    order = rees46_event(purchase, 12)
    assert order is not None and order["event"] == "Order Completed"
    assert order["properties"] == {
        "order_id": "rees46-s3-12",
        "products": [
            {
                "product_id": "1004856",
                "price": 130.76,
                "quantity": 1,
                "brand": "samsung",
                "category": "electronics.smartphone",
            }
        ],
        "revenue": 130.76,
    }
    assert "currency" not in order["properties"]  # the data set does not say which


def test_rees46_converter_leaves_invalid_values_to_validation() -> None:
    event = rees46_event(rees46_row("yesterday,view,1,2,,,cheap,,"), 3)
    assert event is not None
    assert (event["timestamp"], event["properties"]["price"]) == ("yesterday", "cheap")
    assert "anonymousId" not in event and "context" not in event
    not_a_number = rees46_event(rees46_row("2019-10-01 00:00:00 UTC,view,1,2,,,nan,5,s"), 4)
    assert not_a_number is not None and not_a_number["properties"]["price"] == "nan"
    assert rees46_event(rees46_row("2019-10-01 00:00:00 UTC,wishlist,1,2,,,1.00,5,s"), 5) is None


def test_read_rees46_counts_rows_and_refuses_other_files(tmp_path: Path) -> None:
    path = write_rees46(
        tmp_path / "r.csv.gz",
        [
            "2019-09-30 23:59:59 UTC,view,1,2,,,1.00,5,s",  # before --since
            "2019-10-01 00:00:00 UTC,view,1,2,,,1.00,5,s",
            "2019-10-01 00:00:01 UTC,wishlist,1,2,,,1.00,5,s",
            "2019-10-01 00:00:02 UTC,view,1,2",
            "2019-10-02 00:00:00 UTC,view,1,2,,,1.00,5,s",  # on --until
        ],
    )
    counts = RowCounts()
    groups = list(read_rees46(path, counts=counts, since=date(2019, 10, 1), until=date(2019, 10, 2)))
    assert [[event["messageId"] for event in group] for group in groups] == [["rees46-2-view"]]
    assert (counts.read, counts.outside_window, dict(counts.skipped)) == (
        5,
        2,
        {"event type 'wishlist'": 1, "malformed row": 1},
    )
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(ReplayError, match="expected the columns event_time, event_type"):
        list(read_rees46(other, counts=RowCounts()))


def test_batches_keep_groups_whole_and_stop_at_the_limit() -> None:
    groups = [[1], [2, 3], [4, 5, 6], [7]]
    assert list(batches(groups, size=3)) == [[1, 2, 3], [4, 5, 6], [7]]
    assert list(batches(groups, size=2)) == [[1], [2, 3], [4, 5, 6], [7]]
    assert list(batches(groups, size=10, limit=4)) == [[1, 2, 3]]
    assert list(batches([], size=5)) == []


@given(
    sizes=st.lists(st.integers(min_value=1, max_value=8), max_size=30),
    size=st.integers(min_value=1, max_value=10),
    limit=st.none() | st.integers(min_value=0, max_value=100),
)
def test_batches_send_every_group_whole_in_order(sizes: list[int], size: int, limit: int | None) -> None:
    groups, start = [], 0
    for n in sizes:
        groups.append(list(range(start, start + n)))
        start += n
    sent = list(batches(groups, size=size, limit=limit))
    flat = [item for batch in sent for item in batch]
    taken, total = [], 0
    for group in groups:
        if limit is not None and total + len(group) > limit:
            break
        taken.append(group)
        total += len(group)
    assert flat == [item for group in taken for item in group]
    starts = {group[0] for group in taken}
    for batch in sent:
        assert batch[0] in starts  # a batch starts where a group starts: none is cut
        assert len(batch) <= size or len(batch) == len(next(g for g in taken if g[0] == batch[0]))


# --- the consent import --------------------------------------------------------------------------


def test_consent_import_grants_once_per_person_and_caches_the_answer(
    commit: Commit, django_assert_num_queries: DjangoAssertNumQueries, django_assert_max_num_queries: Any
) -> None:
    # 200 people: the local-memory cache of the embedded configuration keeps at most 300 entries.
    people = [Subject(user_id=f"u{n}") for n in range(100)] + [Subject(anonymous_id=f"a{n}") for n in range(100)]
    with django_assert_max_num_queries(20):  # a few queries per thousand, not per subject
        result = commit(lambda: consent_bulk_import(subjects=[*people, people[0]], purpose="analytics"))
    assert (result.recorded, result.already_chosen, result.suppressed) == (200, 0, 0)
    records = ConsentRecord.objects.filter(purpose_id="analytics")
    assert records.count() == 200
    assert set(records.values_list("source", "granted", "policy_version__version")) == {("import", True, 1)}
    with django_assert_num_queries(0):  # the cache already holds every new state
        gate = consent_gate(people, "analytics")
    assert {(answer.allowed, answer.suppressed) for answer in gate.values()} == {(True, False)}

    again = commit(lambda: consent_bulk_import(subjects=people, purpose="analytics"))
    assert (again.recorded, again.already_chosen) == (0, 200)
    assert ConsentRecord.objects.count() == 200


def test_consent_import_never_overrides_a_choice_or_an_erasure(commit: Commit) -> None:
    withdrew, erased, linked = Subject(user_id="withdrew"), Subject(user_id="erased"), Subject(anonymous_id="browser")
    consent_record(subject=withdrew, choices={"analytics": False}, source="banner")
    consent_record(subject=Subject(user_id="known"), choices={"analytics": True}, source="banner")
    subject_link(anonymous_id="browser", user_id="known", source="identify")
    subject_erase(subject=erased, requested_via="api")
    before = ConsentRecord.objects.count()

    result = commit(lambda: consent_bulk_import(subjects=[withdrew, erased, linked], purpose="analytics"))

    assert (result.recorded, result.already_chosen, result.suppressed) == (0, 2, 1)
    assert ConsentRecord.objects.count() == before
    assert consent_allows(subject=withdrew, purpose="analytics") is False
    assert consent_allows(subject=erased, purpose="analytics") is False
    assert consent_allows(subject=linked, purpose="analytics") is True  # the person's own grant


def test_consent_import_refuses_unknown_and_required_purposes() -> None:
    for purpose, message in (("ads", "is not a consent purpose"), ("necessary", "is required")):
        with pytest.raises(ConsentError, match=message):
            consent_bulk_import(subjects=[Subject(user_id="u1")], purpose=purpose)
    assert ConsentRecord.objects.count() == 0


# --- the command on slices of the real files ---------------------------------------------------


def orders_as_stored() -> dict[str, tuple[object, ...]]:
    return {
        order.order_id: (
            order.status,
            order.revenue,
            order.placed_at,
            order.currency,
            order.customer.user_id if order.customer else None,
            [(line.position, line.sku, line.name, line.quantity, line.unit_price) for line in order.lines.all()],
        )
        for order in Order.objects.select_related("customer").prefetch_related("lines")
    }


def test_online_retail_slice_stores_every_event_and_the_loaders_orders(
    retail_slice: tuple[Path, list[list[str]]],
) -> None:
    path, rows = retail_slice
    expected = uci_expected(rows)
    total = sum(expected["events"].values())
    assert all(expected["events"].values())  # the slice has every kind of event
    assert any(kind == "a" for kind, _ in expected["subjects"])  # and guest checkouts

    output = replay("online-retail", path)

    assert stored_by_name() == expected["events"]
    assert set(Order.objects.values_list("order_id", flat=True)) == expected["orders"]
    assert set(Order.objects.values_list("origin", flat=True)) == {"event"}
    assert Event.objects.filter(sent_at__isnull=False).count() == 0
    first = Event.objects.get(message_id="uci-536365-order")
    assert (first.timestamp, first.user_id, first.properties["revenue"]) == (PLACED, "17850", 139.12)
    guests = {i for kind, i in expected["subjects"] if kind == "a"}
    assert set(Event.objects.exclude(anonymous_id="").values_list("anonymous_id", flat=True)) == guests
    assert ConsentRecord.objects.filter(source="import").count() == len(expected["subjects"])
    assert f"Events read: {total:,} (" in output
    assert f"Consent (analytics, source import): {len(expected['subjects']):,} granted now" in output
    assert f"Accepted: {total:,}\nRejected: 0\nDropped: 0\nStored: {total:,}\n" in output
    assert f"Duplicates (already stored): 0\nOrders recorded: {len(expected['orders']):,}\n" in output
    if settings.REDIS_URL:
        from tracking.stream import backlog

        assert backlog() == {"length": 0, "pending": 0}  # the command processed what it appended

    # The same orders, lines and customers as load_online_retail stores from the same rows.
    replayed = orders_as_stored()
    Order.objects.all().delete()
    call_command("load_online_retail", str(path), "--no-progress", stdout=StringIO())
    assert orders_as_stored() == replayed


def profile_state() -> list[tuple[object, ...]]:
    return list(
        Profile.objects.order_by("key").values_list(
            "key", "sessions", "product_views", "adds", "orders", "cancellations", "revenue", "cart", "updated_at"
        )
    )


@pytest.mark.parametrize("dataset", ["online-retail", "rees46"])
def test_a_second_run_stores_nothing_and_reports_duplicates(
    dataset: str, retail_slice: tuple[Path, list[list[str]]], rees46_slice: tuple[Path, list[list[str]]]
) -> None:
    path, rows = retail_slice if dataset == "online-retail" else rees46_slice
    expected = uci_expected(rows) if dataset == "online-retail" else rees46_expected(rows)
    total = sum(expected["events"].values())
    replay(dataset, path)
    before = (stored_by_name(), profile_state(), orders_as_stored(), ConsentRecord.objects.count())

    output = replay(dataset, path)

    assert (stored_by_name(), profile_state(), orders_as_stored(), ConsentRecord.objects.count()) == before
    assert f"0 granted now, {len(expected['subjects']):,} had chosen already" in output
    assert (
        f"Accepted: {total:,}\nRejected: 0\nDropped: 0\nStored: 0\nDuplicates (already stored): {total:,}\n" in output
    )
    assert "Orders recorded: 0\n" in output
    assert ingest_counts() == {"stored": total, "duplicate": total}


def test_rees46_slice_stores_anonymous_visitors_with_their_sessions(rees46_slice: tuple[Path, list[list[str]]]) -> None:
    path, rows = rees46_slice
    expected = rees46_expected(rows)
    assert set(expected["events"]) == {"Product Viewed", "Product Added", "Order Completed"}

    output = replay("rees46", path, "--batch-size", "128")

    assert stored_by_name() == expected["events"]
    assert Event.objects.exclude(user_id="").count() == 0
    assert set(Event.objects.values_list("anonymous_id", flat=True)) == {f"rees46-{u}" for u in expected["subjects"]}
    assert Order.objects.count() == expected["orders"]
    number = next(n for n, row in enumerate(rows, start=1) if row[1] == "purchase")
    order = Order.objects.get(order_id=f"rees46-{rows[number - 1][8]}-{number}")
    assert (order.revenue, order.anonymous_id) == (Decimal(rows[number - 1][6]), f"rees46-{rows[number - 1][7]}")
    event = Event.objects.get(message_id="rees46-1-view")
    assert event.context["pz"]["dataset_session"] == rows[0][8]
    assert event.timestamp == datetime.fromisoformat(rows[0][0].removesuffix(" UTC")).replace(tzinfo=UTC)
    assert event.session_id  # our own sessions, besides the data set's
    assert ConsentRecord.objects.filter(source="import").count() == len(expected["subjects"])
    assert f"Stored: {sum(expected['events'].values()):,}\n" in output


def test_without_a_consent_basis_everything_is_dropped(rees46_slice: tuple[Path, list[list[str]]]) -> None:
    path, rows = rees46_slice

    output = replay("rees46", path, "--consent-basis", "none")

    assert Event.objects.count() == 0
    assert Order.objects.count() == 0
    assert Profile.objects.count() == 0
    assert ConsentRecord.objects.count() == 0
    assert f"Accepted: 0\nRejected: 0\nDropped: {len(rows):,}\n  no_consent: {len(rows):,}\nStored: 0\n" in output
    assert "Consent (" not in output
    assert ingest_counts() == {"no_consent": len(rows)}


# --- the command on hand-written rows ----------------------------------------------------------

ROWS = [
    "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850,United Kingdom",
    "536366,71053,WHITE METAL LANTERN,6,2010-12-01 08:28:00,3.39,13047,United Kingdom",
    "536367,22633,HAND WARMER UNION JACK,3,2010-12-01 09:00:00,2.10,12583,France",
]


def test_people_who_withdrew_or_were_erased_are_not_replayed(tmp_path: Path) -> None:
    consent_record(subject=Subject(user_id="13047"), choices={"analytics": False}, source="banner")
    subject_erase(subject=Subject(user_id="12583"), requested_via="api")

    output = replay("online-retail", write_online_retail(tmp_path / "r.csv.gz", ROWS), "--source", "Import 2010")

    assert set(Event.objects.values_list("user_id", flat=True)) == {"17850"}
    assert list(Order.objects.values_list("order_id", flat=True)) == ["536365"]
    assert "1 granted now, 1 had chosen already (left as they chose), 1 erased (left suppressed)" in output
    assert "Dropped: 4\n  no_consent: 2\n  suppressed: 2\n" in output
    assert Source.objects.filter(name="Import 2010").count() == 1


def test_a_large_order_sheds_its_names_and_a_huge_one_is_rejected(tmp_path: Path) -> None:
    def invoice(number: int, lines: int) -> list[str]:
        return [
            f"{number},{21000 + n},A PRODUCT WITH A LONG NAME {n},1,2010-12-01 10:00:00,1.25,17850,United Kingdom"
            for n in range(lines)
        ]

    # 400 lines with names is over the 32 KB of a Segment event; without the names (the catalog has
    # them) it fits. 1,000 lines do not fit even so.
    rows = [*ROWS[:1], *invoice(536400, 400), *invoice(536401, 1000)]
    output = replay("online-retail", write_online_retail(tmp_path / "r.csv.gz", rows))

    assert stored_by_name() == {"Product Added": 1401, "Order Completed": 2}
    assert sorted(Order.objects.values_list("order_id", flat=True)) == ["536365", "536400"]
    assert Order.objects.get(order_id="536400").lines.count() == 400
    assert "Rejected: 1\n  event: is over the 32 KB limit for one event: 1\n" in output


def test_rows_validation_refuses_are_rejected_with_their_field(tmp_path: Path) -> None:
    path = write_rees46(
        tmp_path / "e.csv.gz",
        [
            "2019-10-01 00:00:00 UTC,view,44600062,1,,shiseido,35.79,541312140,s1",
            "2019-10-01 00:00:01 UTC,view,44600063,1,,,cheap,541312140,s1",
            "yesterday,view,44600064,1,,,1.00,541312140,s1",
            "2019-10-01 00:00:03 UTC,view,,1,,,1.00,541312140,s1",
        ],
    )
    output = replay("rees46", path)

    assert list(Event.objects.values_list("message_id", flat=True)) == ["rees46-1-view"]
    rejected = re.findall(r"^  (\S+): .*: 1$", output.split("Rejected: 3\n")[1].split("Dropped")[0], re.MULTILINE)
    assert sorted(rejected) == ["properties.price", "properties.product_id", "timestamp"]
    assert ingest_counts() == {"stored": 1, "rejected": 3}


def test_limit_since_and_until(tmp_path: Path) -> None:
    path = write_online_retail(tmp_path / "r.csv.gz", ROWS)
    output = replay("online-retail", path, "--since", "2010-12-01", "--until", "2010-12-02", "--limit", "5")
    assert stored_by_name() == {"Product Added": 2, "Order Completed": 2}  # a third invoice would pass 5
    assert "Events read: 0, sent to source 'Replay'" in replay("online-retail", path, "--until", "2010-12-01")
    assert "Stored: 4\n" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "2010-12-02", "--until", "2010-12-01"], "--since must be before --until"),
        (["--batch-size", "2501"], "--batch-size is at most 2,500"),
        (["--limit", "0"], "argument --limit: 0 is not a positive number"),
        (["--source", " "], "--source cannot be empty"),
    ],
)
def test_bad_arguments_are_refused(tmp_path: Path, args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        replay("online-retail", write_online_retail(tmp_path / "r.csv.gz", ROWS), *args)
    assert Event.objects.count() == 0 and ConsentRecord.objects.count() == 0


def test_missing_or_wrong_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="does not exist"):
        replay("rees46", tmp_path / "nope.csv.gz")
    retail = write_online_retail(tmp_path / "r.csv.gz", ROWS)
    with pytest.raises(CommandError, match="expected the columns event_time"):
        replay("rees46", retail)
    with pytest.raises(CommandError, match="expected the columns InvoiceNo"):
        replay("online-retail", write_rees46(tmp_path / "e.csv.gz", []))
    assert Event.objects.count() == 0


def test_no_process_needs_the_stream(tmp_path: Path, settings: Any) -> None:
    settings.REDIS_URL = ""
    with pytest.raises(CommandError, match="--no-process needs the Redis Stream"):
        replay("online-retail", write_online_retail(tmp_path / "r.csv.gz", ROWS), "--no-process")


@pytest.mark.skipif(not settings.REDIS_URL, reason="the Redis Stream needs REDIS_URL")
def test_no_process_leaves_the_batches_to_the_consumers(tmp_path: Path) -> None:
    from tracking.consumer import consume_available

    output = replay("online-retail", write_online_retail(tmp_path / "r.csv.gz", ROWS), "--no-process")

    assert "Stored: not yet (1 batch appended to the event stream, for consume_events)" in output
    assert Event.objects.count() == 0
    assert consume_available(name="test-consumer").stored == 6
    assert stored_by_name() == {"Product Added": 3, "Order Completed": 3}
