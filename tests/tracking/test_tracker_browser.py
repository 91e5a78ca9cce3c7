"""The storefront tracker (``static/pz/pz.js``) in a real browser, on the demo shop.

Debian's Chromium driven by Playwright against the live server, as in
``tests/consent/test_banner_browser.py`` (its docstring says why Playwright runs only inside each
test and why the tests are transactional with ``serialized_rollback``). The collector processes
events in the request (``PZ_PROCESS_EVENTS_IN_PROCESS``), so an event the browser sent is in
``tracking.models.Event`` once the collector has answered; the tests poll the database for at most
ten seconds rather than sleep.

An event that reached the collector twice is stored once, but the collector counts the second
arrival as a duplicate (``IngestCount``): the tests check those counts, so a double send fails them.
"""

import json
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from playwright.sync_api import Page, Request, Route, expect
from pytest_django import Settings
from pytest_django.live_server_helper import LiveServer

from consent.models import ConsentRecord, SubjectLink
from personalization.models import Product
from tests.browsing import answer, events_when, outcomes, visitor, without_recommendations
from tests.conftest import NewPage
from tests.factories import CategoryFactory, CustomerFactory, ProductFactory
from tracking.models import Event, Order
from tracking.services import source_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

# A product name is shop data: it reaches the page and the events as text, never as HTML.
NAME = 'Heart <img src=x onerror="window.__pwned=1"> & "Co" </script>'
BLOCKED_STORAGE = """
for (const name of ["getItem", "setItem", "removeItem"]) {
  Storage.prototype[name] = () => { throw new DOMException("blocked", "SecurityError"); };
}
"""

Summary = tuple[str, str, str]  # (type, event or page name, page path)


@pytest.fixture
def new_page(new_page: NewPage) -> NewPage:
    """Pages whose recommendation widgets are answered in the browser: these tests count events."""
    return lambda **options: without_recommendations(new_page(**options))


@pytest.fixture
def product(live_server: LiveServer, settings: Settings) -> Product:
    """A product of the demo shop, whose source's write key embeds the banner and pz.js."""
    # Stored during the request: the live server's threads read the overridden settings object.
    settings.PZ_PROCESS_EVENTS_IN_PROCESS = True
    source_create(name=settings.PZ_DEMO_SOURCE)
    category = CategoryFactory.create(name="Candle Holders", parent=CategoryFactory.create(name="Home"))
    return ProductFactory.create(sku="85123A", name=NAME, price=Decimal("2.55"), category=category, brand="Falcon")


@pytest.fixture
def product_url(live_server: LiveServer, product: Product) -> str:
    return f"{live_server.url}/shop/p/{product.sku}/"


@pytest.fixture
def batches(page: Page) -> list[dict[str, Any]]:
    """The body of every /v1/batch request made while a page of the context is open. Playwright does
    not report the requests a page makes as it is left (pagehide): those are seen by the collector's
    counts (``outcomes``)."""
    sent: list[dict[str, Any]] = []

    def seen(request: Request) -> None:
        if request.url.endswith("/v1/batch"):
            sent.append(json.loads(request.post_data or "null"))

    page.context.on("request", seen)
    return sent


def summary(events: list[Event]) -> list[Summary]:
    return sorted((e.type, e.event or e.name, e.context["page"]["path"]) for e in events)


def sent_ids(bodies: list[dict[str, Any]]) -> Counter[str]:
    return Counter(event["messageId"] for body in bodies for event in body["batch"])


def queued_events(page: Page) -> list[str]:
    return page.evaluate("JSON.parse(localStorage.getItem('pz_queue') || '[]').map((e) => e.event || e.type)")


def test_a_customer_signed_in_is_tracked_and_chooses_in_their_own_name_with_the_pages_token(
    page: Page, product: Product, product_url: str, live_server: LiveServer
) -> None:
    CustomerFactory.create(user_id="c-9")
    page.goto(f"{live_server.url}/shop/customers/")
    page.get_by_label("Customer number").fill("c-9")
    page.get_by_role("button", name="Browse as this customer").click()
    page.wait_for_url("**/shop/account/")
    anonymous_id = visitor(page)
    answer(page, "Accept all")  # the banner sends the user id with its token: 200, in c-9's name
    page.goto(product_url)
    page.goto("about:blank")

    events = events_when(page, 5)  # a page view and an identify on each page, and the product viewed
    assert {(e.type, e.event, e.user_id, e.anonymous_id) for e in events} == {
        ("page", "", "c-9", anonymous_id),
        ("identify", "", "c-9", anonymous_id),
        ("track", "Product Viewed", "c-9", anonymous_id),
    }
    assert all("userToken" not in e.context["pz"] for e in events)
    assert set(ConsentRecord.objects.values_list("user_id", flat=True)) == {"c-9"}
    assert SubjectLink.objects.filter(anonymous_id=anonymous_id, user_id="c-9").exists()


def test_a_visit_sends_every_event_once_including_those_sent_as_a_page_is_left(
    page: Page, product: Product, product_url: str, live_server: LiveServer
) -> None:
    page.goto(product_url)
    anonymous_id = visitor(page)
    answer(page, "Accept all")

    # The form posts and the browser navigates at once: Product Added leaves with the page.
    page.get_by_label("Quantity").fill("2")
    page.get_by_role("button", name="Add to cart").click()
    page.wait_for_url("**/shop/cart/")
    assert queued_events(page) == ["page", "Cart Viewed"]  # Product Added left with the product page
    page.get_by_role("link", name="Go to checkout").click()
    page.wait_for_url("**/shop/checkout/")
    page.get_by_role("button", name="Place order").click()
    page.wait_for_url("**/shop/orders/*/")
    assert page.evaluate("window.__pwned") is None
    order = Order.objects.get()
    page.goto("about:blank")

    events = events_when(page, 9)  # the order page's events left with it: no page of the shop loads later
    product_path, order_path = f"/shop/p/{product.sku}/", f"/shop/orders/{order.order_id}/"
    assert summary(events) == [
        ("page", "", "/shop/cart/"),
        ("page", "", "/shop/checkout/"),
        ("page", "", order_path),
        ("page", "", product_path),
        ("track", "Cart Viewed", "/shop/cart/"),
        ("track", "Checkout Started", "/shop/checkout/"),
        ("track", "Order Completed", order_path),
        ("track", "Product Added", product_path),
        ("track", "Product Viewed", product_path),
    ]
    assert {(e.anonymous_id, e.user_id) for e in events} == {(anonymous_id, "")}
    line = {"product_id": "85123A", "name": NAME, "price": 2.55, "category": "Home > Candle Holders", "brand": "Falcon"}
    by_name = {e.event: e for e in events if e.type == "track"}
    assert by_name["Product Viewed"].properties == {**line, "currency": "GBP"}
    assert by_name["Product Added"].properties == {**line, "quantity": 2, "currency": "GBP"}
    assert by_name["Cart Viewed"].properties == {"products": [{**line, "quantity": 2}], "currency": "GBP"}
    assert by_name["Checkout Started"].properties == {
        "products": [{**line, "quantity": 2}],
        "value": 5.1,
        "currency": "GBP",
    }
    assert by_name["Order Completed"].message_id == f"pz-order-{order.order_id}"
    assert by_name["Order Completed"].properties == {
        "order_id": order.order_id,
        "revenue": 5.1,
        "currency": "GBP",
        "products": [{"product_id": "85123A", "name": NAME, "price": 2.55, "quantity": 2}],
    }
    page_view = next(e for e in events if e.type == "page" and e.context["page"]["path"] == "/shop/cart/")
    assert page_view.properties["url"] == f"{live_server.url}/shop/cart/"
    assert page_view.context["library"] == {"name": "pz.js", "version": "1.0.0"}
    assert set(page_view.context) >= {"page", "locale", "timezone", "screen", "userAgent"}

    # Coming back: the next page sends its own page view and nothing of the visit again.
    page.goto(f"{live_server.url}/shop/")
    page.evaluate("pz.flush()")
    assert page.evaluate("localStorage.getItem('pz_queue')") is None
    assert len(events_when(page, 10)) == 10
    # Each event reached the collector once: one arriving again would be counted as a duplicate.
    assert outcomes() == {"stored": 10}


def test_emptying_a_cart_line_sends_product_removed(page: Page, product_url: str) -> None:
    page.goto(product_url)
    answer(page, "Accept all")
    page.get_by_role("button", name="Add to cart").click()
    page.wait_for_url("**/shop/cart/")
    page.get_by_label("Quantity").fill("0")
    page.get_by_role("button", name="Update").click()
    expect(page.get_by_text("Your cart is empty.")).to_be_visible()
    page.wait_for_load_state()
    page.evaluate("pz.flush()")

    events = events_when(page, 8)
    assert summary(events) == [
        ("page", "", "/shop/cart/"),
        ("page", "", "/shop/cart/"),
        ("page", "", "/shop/p/85123A/"),
        ("track", "Cart Viewed", "/shop/cart/"),
        ("track", "Cart Viewed", "/shop/cart/"),
        ("track", "Product Added", "/shop/p/85123A/"),
        ("track", "Product Removed", "/shop/cart/"),
        ("track", "Product Viewed", "/shop/p/85123A/"),
    ]
    removed = next(e for e in events if e.event == "Product Removed")
    assert removed.properties == {
        "product_id": "85123A",
        "name": NAME,
        "price": 2.55,
        "quantity": 1,
        "category": "Home > Candle Holders",
        "brand": "Falcon",
        "currency": "GBP",
    }
    assert [e.properties["products"] for e in events if e.event == "Cart Viewed"][-1] == []
    assert outcomes() == {"stored": 8}


def test_nothing_is_sent_before_the_visitor_allows_analytics(
    page: Page, product_url: str, batches: list[dict[str, Any]]
) -> None:
    page.goto(product_url)
    page.evaluate("pz.flush()")
    assert batches == []
    assert page.evaluate("localStorage.getItem('pz_queue')") is None  # waiting in memory, not stored
    assert outcomes() == {}

    with page.expect_request("**/v1/batch"):
        answer(page, "Accept all")

    assert summary(events_when(page, 2)) == [
        ("page", "", "/shop/p/85123A/"),
        ("track", "Product Viewed", "/shop/p/85123A/"),
    ]
    assert len(batches) == 1
    assert outcomes() == {"stored": 2}


def test_after_reject_all_nothing_is_ever_sent(
    page: Page, live_server: LiveServer, product_url: str, batches: list[dict[str, Any]]
) -> None:
    page.goto(product_url)
    answer(page, "Reject all")
    page.evaluate("pz.flush()")

    page.get_by_role("button", name="Add to cart").click()
    page.wait_for_url("**/shop/cart/")
    page.evaluate("pz.flush()")
    page.goto("about:blank")
    page.goto(f"{live_server.url}/shop/")  # a later visit
    page.evaluate("pz.flush()")

    assert batches == []
    assert page.evaluate("localStorage.getItem('pz_queue')") is None
    assert Event.objects.count() == 0
    assert outcomes() == {}  # not even an event the collector would have dropped


def test_a_failed_batch_is_sent_again_and_stored_once(page: Page, product_url: str) -> None:
    attempts: list[dict[str, Any]] = []

    def fail_once(route: Route) -> None:
        attempts.append(json.loads(route.request.post_data or "null"))
        if len(attempts) == 1:
            route.abort()
        else:
            route.continue_()

    page.route("**/v1/batch", fail_once)
    page.goto(product_url)
    answer(page, "Accept all")

    events = events_when(page, 2)
    assert summary(events) == [
        ("page", "", "/shop/p/85123A/"),
        ("track", "Product Viewed", "/shop/p/85123A/"),
    ]
    assert len(attempts) == 2
    assert sent_ids(attempts[:1]) == sent_ids(attempts[1:]) == Counter(e.message_id for e in events)
    assert outcomes() == {"stored": 2}


def test_a_batch_refused_with_400_is_dropped_not_retried(page: Page, product_url: str) -> None:
    attempts: list[Request] = []
    warnings: list[str] = []
    page.on("console", lambda message: warnings.append(message.text) if message.type == "warning" else None)

    def refuse(route: Route) -> None:
        attempts.append(route.request)
        route.fulfill(status=400, content_type="application/json", body='{"code": "invalid", "detail": "no"}')

    page.route("**/v1/batch", refuse)
    page.goto(product_url)
    with page.expect_request("**/v1/batch"):
        answer(page, "Accept all")
    page.evaluate("pz.flush()")
    page.evaluate("pz('track', 'Something Else')")
    page.evaluate("pz.flush()")

    assert len(attempts) == 2  # the refused events were not sent again with the next one
    assert len(json.loads(attempts[1].post_data or "null")["batch"]) == 1
    assert page.evaluate("localStorage.getItem('pz_queue')") is None
    assert any("refused a batch (HTTP 400)" in text for text in warnings)
    assert Event.objects.count() == 0


def test_blocked_storage_does_not_break_the_page_and_events_still_arrive(new_page: NewPage, product_url: str) -> None:
    page = new_page()
    errors: list[Exception] = []
    page.on("pageerror", lambda error: errors.append(error))
    page.add_init_script(BLOCKED_STORAGE)
    page.goto(product_url)
    anonymous_id = visitor(page)
    answer(page, "Accept all")  # the banner cannot store the answer: pz.js hears its pz:consent event

    events = events_when(page, 2)
    assert summary(events) == [
        ("page", "", "/shop/p/85123A/"),
        ("track", "Product Viewed", "/shop/p/85123A/"),
    ]
    assert {e.anonymous_id for e in events} == {anonymous_id}
    assert errors == []
