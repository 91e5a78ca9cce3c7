"""The public write key cannot act in a customer's name: a user id in an event counts only with
proof (the source's secret key, or the user's userToken in ``context.pz.userToken``)."""

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from consent.models import SubjectLink
from consent.services import consent_record
from consent.subjects import Subject
from tests.personalization.history import build_shop, train
from tracking.authentication import user_token
from tracking.models import Customer, Event, Order, Profile
from tracking.services import SourceKeys, source_create

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
Commit = Callable[..., Any]


def basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def send(client: Client, key: str, *events: dict[str, Any]) -> Any:
    return client.post(
        "/v1/batch", json.dumps({"batch": list(events)}), content_type="application/json", HTTP_AUTHORIZATION=basic(key)
    )


def identify(message_id: str, anonymous_id: str, user_id: str, **context: Any) -> dict[str, Any]:
    return {
        "type": "identify",
        "messageId": message_id,
        "anonymousId": anonymous_id,
        "userId": user_id,
        "traits": {"email": "someone@example.com", "country": "FR"},
        "context": context,
    }


def viewed(message_id: str, sku: str, **ids: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Product Viewed",
        "messageId": message_id,
        "properties": {"product_id": sku},
        **ids,
    }


def allow(commit: Commit, subject: Subject) -> None:
    commit(lambda: consent_record(subject=subject, choices={"analytics": True, "personalization": True}, source="api"))


@pytest.fixture
def keys() -> SourceKeys:
    return source_create(name="Web shop")


def profile(key: str) -> dict[str, Any]:
    found = Profile.objects.filter(key=key).values("product_views", "recently_viewed", "merged_into_id").first()
    return dict(found) if found else {}


def test_an_identify_with_the_write_key_alone_links_nothing_and_shows_the_browser_nothing_of_the_customer(
    client: Client, commit: Commit, keys: SourceKeys, drain: Callable[[], int]
) -> None:
    build_shop(6)
    train(commit)
    allow(commit, Subject(anonymous_id="attacker-browser"))
    customer_before = profile("u:k0")
    ask = {"writeKey": keys.write_key, "placement": "home", "anonymousId": "attacker-browser"}

    response = send(
        client,
        keys.write_key,
        identify("hijack-1", "attacker-browser", "k0"),
        viewed("hijack-2", "ATTACKER-SKU", anonymousId="attacker-browser", userId="k0"),
        identify("hijack-3", "attacker-browser", "k0", pz={"userToken": "0" * 64}),  # a forged token
    )
    drain()

    assert response.status_code == 200 and response.json()["accepted"] == 3
    assert SubjectLink.objects.filter(anonymous_id="attacker-browser").count() == 0
    assert client.get("/api/v1/recommendations", ask).json()["personalized"] is False
    assert profile("u:k0") == customer_before
    assert profile("a:attacker-browser") == {
        "product_views": 1,
        "recently_viewed": ["ATTACKER-SKU"],
        "merged_into_id": None,
    }
    stored = Event.objects.filter(message_id__startswith="hijack-").order_by("message_id")
    assert [(e.user_id, e.anonymous_id) for e in stored] == [("", "attacker-browser")] * 3
    assert "userToken" not in stored[2].context["pz"]


def test_an_identify_with_the_users_token_links_and_merges(
    client: Client, commit: Commit, keys: SourceKeys, drain: Callable[[], int]
) -> None:
    allow(commit, Subject(anonymous_id="browser-1"))
    token = user_token(keys.source, "c-1")

    response = send(
        client,
        keys.write_key,
        viewed("proof-1", "SKU-1", anonymousId="browser-1"),
        identify("proof-2", "browser-1", "c-1", pz={"userToken": token}),
    )
    drain()

    assert response.status_code == 200 and response.json()["accepted"] == 2
    assert list(SubjectLink.objects.values_list("anonymous_id", "user_id", "source")) == [
        ("browser-1", "c-1", "identify")
    ]
    assert profile("u:c-1")["recently_viewed"] == ["SKU-1"]
    assert Customer.objects.get(user_id="c-1").country == "FR"
    assert "userToken" not in Event.objects.get(message_id="proof-2").context["pz"]  # a credential: never stored


def test_a_server_sending_with_the_secret_key_is_trusted_for_every_user_id(
    client: Client, commit: Commit, keys: SourceKeys, drain: Callable[[], int]
) -> None:
    allow(commit, Subject(anonymous_id="browser-2"))
    allow(commit, Subject(user_id="c-2"))

    response = send(
        client,
        keys.secret_key,
        identify("server-1", "browser-2", "c-2"),
        viewed("server-2", "SKU-2", userId="c-2"),  # no anonymous id: the server's word is enough
    )
    drain()

    assert response.status_code == 200 and response.json()["accepted"] == 2
    assert list(SubjectLink.objects.values_list("anonymous_id", "user_id")) == [("browser-2", "c-2")]
    assert profile("u:c-2")["recently_viewed"] == ["SKU-2"]


def test_an_event_naming_only_a_user_without_proof_is_refused_and_nothing_is_stored(
    client: Client, commit: Commit, keys: SourceKeys, drain: Callable[[], int]
) -> None:
    allow(commit, Subject(user_id="c-3"))

    response = send(client, keys.write_key, viewed("only-user-1", "SKU-3", userId="c-3"))
    drain()

    assert response.status_code == 400
    assert response.json()["rejected"] == [
        {
            "index": 0,
            "messageId": "only-user-1",
            "field": "userId",
            "reason": "needs proof that the sender may act for this user: the source's secret key (a server), "
            "or context.pz.userToken (a browser); or send it with the visitor's anonymousId",
        }
    ]
    assert Event.objects.count() == 0
    assert Profile.objects.count() == 0


def test_an_order_without_proof_is_recorded_under_the_anonymous_visitor_only(
    client: Client, commit: Commit, keys: SourceKeys, drain: Callable[[], int]
) -> None:
    allow(commit, Subject(anonymous_id="browser-4"))
    order = {
        "type": "track",
        "event": "Order Completed",
        "messageId": "order-1",
        "anonymousId": "browser-4",
        "userId": "c-4",
        "properties": {"order_id": "A-1", "revenue": 10, "products": [{"product_id": "SKU-4", "price": 10}]},
    }

    response = send(client, keys.write_key, order)
    drain()

    assert response.status_code == 200 and response.json()["accepted"] == 1
    order_row = Order.objects.get()
    assert (order_row.order_id, order_row.customer, order_row.anonymous_id) == ("A-1", None, "browser-4")
    assert Customer.objects.filter(user_id="c-4").count() == 0
    assert profile("u:c-4") == {}


def test_an_alias_with_the_write_key_alone_links_nothing(
    client: Client, commit: Commit, keys: SourceKeys, drain: Callable[[], int]
) -> None:
    allow(commit, Subject(anonymous_id="attacker-browser"))
    alias = {"type": "alias", "messageId": "alias-1", "anonymousId": "attacker-browser", "userId": "c-5"}
    only_user = {"type": "alias", "messageId": "alias-2", "previousId": "attacker-browser", "userId": "c-5"}

    response = send(client, keys.write_key, {**alias, "previousId": "attacker-browser"}, only_user)
    drain()

    assert response.status_code == 200
    assert (response.json()["accepted"], [r["field"] for r in response.json()["rejected"]]) == (1, ["userId"])
    assert SubjectLink.objects.count() == 0
    assert list(Event.objects.values_list("message_id", "user_id", "anonymous_id")) == [
        ("alias-1", "", "attacker-browser")
    ]
