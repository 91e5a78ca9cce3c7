"""The live profiles mirrored in Redis for the recommendation API (``tracking.live_mirror``):
written by the consumer, filled from the database only where empty, pointers for merged browsers,
first-time visitors answered without a query, and erased with the person."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from django.test import Client

from config import sql
from consent.models import Purpose
from consent.selectors import consent_allows
from consent.services import refresh_policy_cache
from consent.subjects import Identities, Subject
from tests.factories import ProductFactory
from tracking import live_mirror
from tracking.privacy import subject_erase
from tracking.selectors import live_profile
from tracking.services import SourceKeys

pytestmark = [pytest.mark.django_db]


@pytest.fixture(autouse=True)
def analytics_allowed() -> None:
    Purpose.objects.filter(key="analytics").update(opt_out_jurisdictions=["*"])
    refresh_policy_cache()
    for sku in ("HOLDER", "MUG"):
        ProductFactory.create(sku=sku)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The reads of profiles sent to the database through config.sql (``live_profile``'s)."""
    sent: list[str] = []
    real = sql.fetch_all

    def counted(statement: str, params: Any) -> Any:
        if "FROM tracking_profile" in statement:
            sent.append(statement)
        return real(statement, params)

    monkeypatch.setattr(sql, "fetch_all", counted)
    return sent


def send(client: Client, keys: SourceKeys, drain: Callable[[], int], *events: dict[str, object]) -> None:
    for number, event in enumerate(events):
        event.setdefault("messageId", f"{event['type']}-{number}-{event.get('userId', '')}-{event['anonymousId']}")
    response = client.post(  # the shop's server: its secret key vouches for the user ids
        "/v1/batch", {"batch": events}, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {keys.secret_key}"
    )
    assert response.status_code == 200 and response.json()["accepted"] == len(events), response.content
    drain()


def viewed(sku: str, anonymous_id: str = "anon-1") -> dict[str, object]:
    return {"type": "track", "event": "Product Viewed", "anonymousId": anonymous_id, "properties": {"product_id": sku}}


@pytest.mark.skipif(not live_mirror.mirrored(), reason="the mirror lives in Redis")
def test_the_consumer_writes_the_mirror_and_serving_reads_it_without_a_query(
    client: Client, source_keys: SourceKeys, drain: Callable[[], int], reads: list[str]
) -> None:
    assert live_profile(anonymous_id="anon-1") is None  # a first-time visitor: read once from the database,
    assert live_profile(anonymous_id="anon-1") is None  # then known to have no profile
    assert len(reads) == 1
    send(client, source_keys, drain, viewed("HOLDER"), viewed("MUG"))
    profile = live_profile(anonymous_id="anon-1")  # the consumer's write replaced "no profile"
    assert len(reads) == 1
    assert profile is not None and profile.recently_viewed == ["MUG", "HOLDER"]

    identify: dict[str, object] = {"type": "identify", "anonymousId": "anon-1", "userId": "user-9"}
    send(client, source_keys, drain, identify, {**viewed("HOLDER"), "userId": "user-9"})
    assert live_mirror.mirror_read(["a:anon-1"]) == [["merged", "u:user-9"]]
    by_browser = live_profile(anonymous_id="anon-1")  # the browser points to the person
    by_person = live_profile(user_id="user-9", anonymous_id="anon-1")
    assert len(reads) == 1
    assert by_browser is not None and by_person is not None
    assert by_browser.recently_viewed == by_person.recently_viewed == ["HOLDER", "MUG"]
    assert set(by_browser.category_affinity) == set(by_person.category_affinity) != set()  # decayed to each moment

    # what the database says fills the mirror only where it has nothing: never over a consumer's write
    stale = live_mirror.entry_of_profile([[], {}, {}, {}], 0, None, 0)
    live_mirror.mirror_write({"u:user-9": stale}, only_new=True)
    assert live_profile(user_id="user-9").recently_viewed == ["HOLDER", "MUG"]  # type: ignore[union-attr]

    subject_erase(Identities(user_ids=frozenset({"user-9"}), anonymous_ids=frozenset({"anon-1"})))
    assert live_mirror.mirror_read(["u:user-9", "a:anon-1"]) == [None, None]
    assert live_profile(user_id="user-9", anonymous_id="anon-1") is None


@pytest.mark.skipif(not live_mirror.mirrored(), reason="the mirror lives in Redis")
def test_an_entry_gone_from_the_mirror_is_read_from_the_database_again(
    client: Client, source_keys: SourceKeys, drain: Callable[[], int], reads: list[str]
) -> None:
    send(client, source_keys, drain, viewed("MUG", "anon-2"))
    live_mirror.mirror_forget(["a:anon-2"])  # expired
    assert live_profile(anonymous_id="anon-2").recently_viewed == ["MUG"]  # type: ignore[union-attr]
    assert live_profile(anonymous_id="anon-2").recently_viewed == ["MUG"]  # type: ignore[union-attr]
    assert len(reads) == 1


@pytest.mark.skipif(not live_mirror.mirrored(), reason="the mirror lives in Redis")
def test_the_mirror_is_read_with_the_consent_state_in_one_round_trip(
    client: Client, source_keys: SourceKeys, drain: Callable[[], int], reads: list[str]
) -> None:
    send(client, source_keys, drain, viewed("MUG", "anon-3"))
    keys = live_mirror.profile_keys("", "anon-3")
    read: list[bytes | None] = []
    consent_allows(
        subject=Subject(anonymous_id="anon-3"), purpose="personalization", along=live_mirror.cache_keys(keys), read=read
    )
    assert live_mirror.decoded(read) == live_mirror.mirror_read(keys) != [None]
    profile = live_profile(anonymous_id="anon-3", mirror_entries=read)
    assert profile is not None and profile.recently_viewed == ["MUG"] and reads == []


@pytest.mark.skipif(not live_mirror.mirrored(), reason="the mirror lives in Redis")
def test_an_entry_written_before_sessions_were_mirrored_still_serves() -> None:
    """Entries of the earlier format (without the sessions) live up to a day after an upgrade:
    the profile is read from them, and the visitor counts as returning, as it did then."""
    seen = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    current = live_mirror.entry_of_profile([["MUG"], {}, {}, {}], 1, seen, 1)
    earlier = msgspec.json.encode(msgspec.json.decode(current)[:-1])
    live_mirror.mirror_write({"u:old": earlier, "u:new": current})
    old, new = live_profile(user_id="old"), live_profile(user_id="new")
    assert old is not None and new is not None
    assert (old.recently_viewed, old.orders, old.last_seen_at, old.sessions) == (["MUG"], 1, seen, None)
    assert new.sessions == 1
    in_that_session = seen + timedelta(minutes=10)
    assert old.returning(in_that_session) and not new.returning(in_that_session)
    assert new.returning(seen + timedelta(hours=2))  # back after the session gap
