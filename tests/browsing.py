"""What the browser tests of the demo shop share: answering the consent banner, the visitor's id,
and waiting for what the browser's requests stored.

The waits go through Playwright: its sync API handles the browser's messages (routes, console,
requests) only while one of its calls runs, so a plain sleep would hold the browser's requests back.
"""

import time
from collections.abc import Callable
from typing import Any, TypeVar

from playwright.sync_api import Page, expect

from tracking.models import Event, IngestCount

BANNER = "Your privacy choices"
RECOMMENDATIONS = "**/api/v1/recommendations?**"
T = TypeVar("T")


def answer(page: Page, button: str) -> None:
    """Click one of the consent banner's buttons and wait until the server has recorded the choice."""
    with page.expect_response("**/api/v1/consent/choices") as response:
        page.get_by_role("dialog", name=BANNER).get_by_role("button", name=button).click()
    assert response.value.status == 200
    expect(page.get_by_role("dialog", name=BANNER)).to_be_hidden()


def without_recommendations(page: Page) -> Page:
    """The page's recommendation widgets get an empty list, and the API is not asked: the exposures
    it logs (as events) stay out of a test about something else."""
    nothing: dict[str, Any] = {"rec_id": "00000000-0000-4000-8000-000000000000", "placement": "", "items": []}
    page.route(RECOMMENDATIONS, lambda route: route.fulfill(json=nothing))
    return page


def visitor(page: Page) -> str:
    """The shop session's anonymous id, as the page hands it to the banner and pz.js."""
    value = page.locator("script[data-write-key]").get_attribute("data-anonymous-id")
    assert value
    return value


def until(page: Page, probe: Callable[[], T], timeout: float = 10.0) -> T:
    """What ``probe`` returns, once it is true (or the timeout has passed): the test then asserts it."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            return value
        page.wait_for_timeout(50)


def events_when(page: Page, count: int, timeout: float = 10.0) -> list[Event]:
    """The stored events, once there are ``count`` of them (or the timeout has passed)."""
    until(page, lambda: Event.objects.count() >= count, timeout)
    return list(Event.objects.order_by("timestamp", "id"))


def outcomes() -> dict[str, int]:
    """What the collector counted of the events that reached it: stored, duplicate, dropped…"""
    return dict(IngestCount.objects.values_list("outcome", "count"))
