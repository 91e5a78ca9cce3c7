"""The recommendation widgets of pz.js in a real browser, on the demo shop.

Debian's Chromium driven by Playwright against the live server, as in
``tests/tracking/test_tracker_browser.py``. The tests are transactional with ``serialized_rollback``:
the live server reads what a test writes, and the placements that migration 0005 creates come back
after each flush. The collector processes events in the request, so what the browser sent is in the
database once the collector has answered; the tests wait for conditions, never for a time.
"""

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import ConsoleMessage, Error, Locator, Page, Route, expect
from pytest_django import Settings
from pytest_django.live_server_helper import LiveServer

from personalization.models import ExposureOutcome, Placement, Product
from tests.browsing import RECOMMENDATIONS as API
from tests.browsing import answer, outcomes, until
from tests.factories import ProductFactory
from tests.personalization.history import GARDEN, KITCHEN, build_shop, train
from tracking.authentication import user_token
from tracking.models import Event, Source
from tracking.services import source_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

PAYLOAD = "<img src=x onerror=window.__pwned=1>"


@pytest.fixture
def shop(live_server: LiveServer, settings: Settings, commit: Callable[..., Any]) -> str:
    """The demo shop over the small known history of ``tests/personalization/history.py``, trained."""
    settings.PZ_PROCESS_EVENTS_IN_PROCESS = True
    build_shop(6)
    train(commit)
    # Budgets of seconds: a loaded machine must not turn an answer into the precomputed fallback.
    Placement.objects.update(latency_budget_ms=10_000)
    source_create(name=settings.PZ_DEMO_SOURCE)
    return f"{live_server.url}/shop/"


@pytest.fixture
def storefront(live_server: LiveServer, settings: Settings) -> str:
    """The demo shop with one product and no model: for the tests that answer for the API."""
    source_create(name=settings.PZ_DEMO_SOURCE)
    ProductFactory.create(sku="85123A", name="WHITE HANGING HEART T-LIGHT HOLDER", price=Decimal("2.55"))
    return f"{live_server.url}/shop/"


def slot(page: Page, placement: str) -> Locator:
    return page.locator(f'[data-pz-placement="{placement}"]')


def shown(page: Page, placement: str) -> list[str]:
    """The SKUs a slot shows, in order, once it has rendered."""
    expect(slot(page, placement)).to_have_attribute("data-pz-state", "rendered")
    skus: list[str] = (
        slot(page, placement).locator("li.pz-item").evaluate_all("rows => rows.map((r) => r.dataset.pzProductId)")
    )
    return skus


class Answer(NamedTuple):
    rec_id: str
    strategy: str


def answered(page: Page, placement: str) -> Answer:
    """Which answer of the API a slot shows."""
    section = slot(page, placement).locator(".pz-widget")
    rec_id, strategy = section.get_attribute("data-pz-rec-id"), section.get_attribute("data-pz-strategy")
    assert rec_id and strategy
    return Answer(rec_id, strategy)


def stored(page: Page, event: str, count: int = 1) -> list[Event]:
    """The stored events of that name, once there are ``count`` of them (or ten seconds have passed)."""
    until(page, lambda: Event.objects.filter(event=event).count() >= count)
    return list(Event.objects.filter(event=event).order_by("timestamp"))


def test_the_home_carousel_renders_and_follows_what_the_visitor_views(page: Page, shop: str) -> None:
    page.goto(shop)
    answer(page, "Accept all")  # analytics, so the views are stored; personalization, so they are used
    page.reload()

    before = shown(page, "home")
    carousel = page.get_by_role("region", name="Recommended for you")  # the campaign's name
    expect(carousel.locator("a.tile")).to_have_count(8)  # the shop's own <template>, once per item
    expect(carousel.get_by_role("link").first).to_have_attribute("href", f"{shop}p/{before[0]}/")
    expect(carousel.get_by_role("link").first).to_contain_text(Product.objects.get(sku=before[0]).name)
    expect(carousel.get_by_role("link").first).to_contain_text("£9.99")
    assert set(before) == {*KITCHEN[:4], *GARDEN[:4]}  # a cold start: what is trending, both tastes
    assert answered(page, "home").strategy == "trending"

    page.goto(f"{shop}p/G1/")
    similar, together = shown(page, "product-similar"), shown(page, "product-together")
    assert "G1" not in similar + together
    assert set(similar[:3]) <= set(GARDEN) and set(together[:3]) <= set(GARDEN)
    expect(page.get_by_role("region", name="Similar items")).to_be_visible()
    expect(page.get_by_role("region", name="Often bought together")).to_be_visible()
    page.evaluate("pz.flush()")
    assert [e.properties["product_id"] for e in stored(page, "Product Viewed")] == ["G1"]

    page.goto(shop)
    after = shown(page, "home")
    assert answered(page, "home").strategy == "personalized"
    assert set(after[:4]) <= set(GARDEN)  # the garden thing just viewed pulled its kind to the front
    assert not set(before[:4]) <= set(GARDEN)


def test_a_click_on_an_item_is_recorded_once_with_its_rec_id_and_position(page: Page, shop: str) -> None:
    page.goto(shop)
    answer(page, "Accept all")
    page.reload()
    skus = shown(page, "home")
    rec_id = answered(page, "home").rec_id
    names = dict(Product.objects.values_list("sku", "name"))

    # In view at least half for a second: one impression of the whole list.
    [impression] = stored(page, "Product List Viewed")
    assert impression.properties == {
        "rec_id": rec_id,
        "list_id": "home",
        "currency": "GBP",
        "products": [
            {"product_id": sku, "name": names[sku], "price": 9.99, "position": position}
            for position, sku in enumerate(skus, start=1)
        ],
    }

    # The click leaves with the page it navigates away from.
    slot(page, "home").locator("li.pz-item").nth(2).get_by_role("link").click()
    page.wait_for_url(f"**/shop/p/{skus[2]}/")
    clicks = stored(page, "Product Clicked")
    page.evaluate("pz.flush()")  # the product page sends its own events, and the click not again
    stored(page, "Product Viewed")

    assert [c.properties for c in clicks] == [
        {
            "product_id": skus[2],
            "name": names[skus[2]],
            "price": 9.99,
            "position": 3,
            "currency": "GBP",
            "rec_id": rec_id,
            "list_id": "home",
        }
    ]
    assert Event.objects.filter(event="Product Clicked").count() == 1
    assert "duplicate" not in outcomes()
    attributed = ExposureOutcome.objects.filter(exposure_id=rec_id).order_by("kind")
    assert [(o.kind, o.sku, o.position) for o in attributed] == [("click", skus[2], 3), ("impression", "", None)]


def test_a_customer_gets_their_own_list_with_the_token_the_page_carries(page: Page, shop: str) -> None:
    page.goto(f"{shop}customers/")
    page.get_by_label("Customer number").fill("k0")
    page.get_by_role("button", name="Browse as this customer").click()
    page.wait_for_url("**/shop/account/")

    with page.expect_request(API) as request:
        page.goto(shop)
    query = parse_qs(urlsplit(request.value.url).query)
    token = user_token(Source.objects.get(name=settings.PZ_DEMO_SOURCE), "k0")
    assert (query["userId"], query["userToken"]) == (["k0"], [token])
    assert set(shown(page, "home")[:4]) <= set(KITCHEN)  # k0 buys kitchen things
    assert answered(page, "home").strategy == "personalized"


def test_a_product_named_with_html_renders_as_inert_text(page: Page, shop: str) -> None:
    Product.objects.filter(sku="G1").update(name=PAYLOAD, updated_at=timezone.now())

    page.goto(shop)  # the shop's template
    assert "G1" in shown(page, "home")
    expect(slot(page, "home").locator('[data-pz-product-id="G1"] .name')).to_have_text(PAYLOAD)
    page.goto(f"{shop}p/G2/")  # the built-in item
    assert "G1" in shown(page, "product-similar")
    expect(slot(page, "product-similar").locator('[data-pz-product-id="G1"] .pz-item-name')).to_have_text(PAYLOAD)

    assert page.locator('img[src="x"]').count() == 0
    assert page.evaluate("window.__pwned") is None


def item(sku: str, url: str = "", image: str = "", **fields: Any) -> dict[str, Any]:
    return {"product_id": sku, "name": f"Thing {sku}", "url": url, "image_url": image, "price": "9.99",
            "currency": "GBP", "position": 0, **fields}  # fmt: skip


def test_urls_are_checked_and_the_carousel_works_with_the_keyboard(page: Page, storefront: str) -> None:
    items = [
        item("A1", url="https://elsewhere.example/a1", image="https://images.example/a1.jpg"),
        item("A2", url="javascript:window.__pwned=1", image="javascript:window.__pwned=1"),
        item("A3", url=" JavaScript:window.__pwned=1", image="data:image/svg+xml,<svg onload='window.__pwned=1'/>"),
        item("A4", url="/shop/p/A4/?from=widget", image="/static/a4.jpg", price="12.5"),
        {"name": "no product id: not shown", "position": 5},
        *(item(f"B{n}") for n in range(1, 9)),
    ]
    crafted = {"rec_id": "00000000-0000-4000-8000-0000000000aa", "placement": "home", "campaign": None,
               "strategy": "trending", "items": items, "personalized": False, "note": ""}  # fmt: skip
    page.route(API, lambda route: route.fulfill(json=crafted))
    page.route("**/*.jpg", lambda route: route.fulfill(status=204))
    page.goto(storefront)

    skus = shown(page, "home")
    assert skus == ["A1", "A2", "A3", "A4", *(f"B{n}" for n in range(1, 9))]
    links = slot(page, "home").locator("li.pz-item a")
    hrefs = links.evaluate_all("links => links.map((a) => a.getAttribute('href'))")
    assert hrefs[:5] == [
        "https://elsewhere.example/a1",
        f"{storefront}p/A2/",  # a javascript: URL is dropped for the shop's own product page
        f"{storefront}p/A3/",
        f"{storefront}p/A4/?from=widget",
        f"{storefront}p/B1/",  # no URL in the catalog
    ]
    rows = slot(page, "home").locator("li.pz-item")
    images = rows.evaluate_all("rows => rows.map((r) => [r.dataset.pzImage || '', r.querySelector('img')?.src])")[:4]
    assert images == [
        ["", "https://images.example/a1.jpg"],
        ["none", None],
        ["none", None],
        ["", f"{storefront.removesuffix('/shop/')}/static/a4.jpg"],
    ]
    expect(links.nth(3)).to_contain_text("£12.50")
    assert page.evaluate("window.__pwned") is None

    # Twelve items overflow: the buttons and the arrow keys scroll the list.
    previous, following = (
        page.get_by_role("button", name="Previous products"),
        page.get_by_role("button", name="Next products"),
    )
    expect(previous).to_be_disabled()
    following.click()
    expect(previous).to_be_enabled()
    page.wait_for_function("() => document.querySelector('.pz-track').scrollLeft > 0")
    previous.click()
    page.wait_for_function("() => document.querySelector('.pz-track').scrollLeft === 0")
    page.get_by_role("list", name="Recommended for you").focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => document.querySelector('.pz-track').scrollLeft > 0")
    page.keyboard.press("Tab")
    expect(links.first).to_be_focused()


@pytest.mark.parametrize("failure", ["error", "abort", "timeout", "not json"])
def test_a_widget_whose_api_fails_leaves_the_page_intact(page: Page, storefront: str, failure: str) -> None:
    errors: list[Error] = []
    console: list[ConsoleMessage] = []
    page.on("pageerror", lambda error: errors.append(error))
    page.on("console", lambda message: console.append(message))
    held: list[Route] = []

    def fail(route: Route) -> None:
        if failure == "error":
            route.fulfill(status=500, json={"code": "server_error", "detail": "boom"})
        elif failure == "abort":
            route.abort()
        elif failure == "not json":
            route.fulfill(status=200, content_type="text/html", body="<html><body>maintenance</body></html>")
        else:
            held.append(route)  # never answered: the widget gives up after its timeout

    page.route(API, fail)
    page.goto(f"{storefront}p/85123A/")
    for placement in ("product-similar", "product-together"):
        expect(slot(page, placement)).to_have_attribute("data-pz-state", "failed")
        assert slot(page, placement).evaluate("(slot) => [slot.childNodes.length, slot.offsetHeight > 0]") == [0, True]
    assert len(held) == (2 if failure == "timeout" else 0)

    page.get_by_role("button", name="Add to cart").click()  # the rest of the page works
    page.wait_for_url("**/shop/cart/")
    expect(page.get_by_role("cell", name="White Hanging Heart T-Light Holder")).to_be_visible()
    assert errors == []
    from_pz = [m.text for m in console if m.text.startswith("[pz]")]
    assert [m for m in from_pz if "widget stays empty" not in m] == []
    assert [m.type for m in console if m.text.startswith("[pz]")] == ["warning"] * len(from_pz)
    assert not [m for m in console if m.type == "error" and "pz.js" in (m.location or {}).get("url", "")]


def test_a_slot_gets_nothing_and_stays_empty_when_there_is_nothing_to_show(page: Page, storefront: str) -> None:
    empty: dict[str, Any] = {"rec_id": "00000000-0000-4000-8000-0000000000bb", "placement": "home", "campaign": None,
             "strategy": "trending", "items": [], "personalized": False, "note": ""}  # fmt: skip
    page.route(API, lambda route: route.fulfill(body=json.dumps(empty), content_type="application/json"))
    page.goto(storefront)
    expect(slot(page, "home")).to_have_attribute("data-pz-state", "empty")
    assert slot(page, "home").locator(".pz-widget").count() == 0
