"""The demo shop, the preference center, the admin and the API docs in a real browser under the
Content-Security-Policy: nothing they need is blocked.

Debian's Chromium driven by Playwright against the live server (see ``tests/conftest.py``). A
script injected before each page's own (Playwright's init scripts are exempt from the policy)
records every ``securitypolicyviolation`` event; the console's CSP errors are collected too.
"""

from decimal import Decimal

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from playwright.sync_api import ConsoleMessage, Page, expect
from pytest_django.live_server_helper import LiveServer

from tests.browsing import answer
from tests.conftest import NewPage
from tests.factories import ProductFactory
from tracking.services import source_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  const where = `${event.sourceFile}:${event.lineNumber}`;
  window.__cspViolations.push(`${event.violatedDirective} blocked ${event.blockedURI || "inline"} at ${where}`);
});
"""
PASSWORD = "a-long-staff-password-0451"


@pytest.fixture
def watched(new_page: NewPage) -> tuple[Page, list[str]]:
    """A page that records what the policy blocks, and the console's CSP messages."""
    page = new_page()
    page.add_init_script(RECORD_VIOLATIONS)
    console: list[str] = []

    def note(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            console.append(message.text)

    page.on("console", note)
    return page, console


def blocked(page: Page, console: list[str]) -> list[str]:
    page.wait_for_load_state("load")
    recorded: list[str] = page.evaluate("window.__cspViolations")
    return [*recorded, *console]


def test_every_page_type_works_under_the_policy(watched: tuple[Page, list[str]], live_server: LiveServer) -> None:
    page, console = watched
    source_create(name=settings.PZ_DEMO_SOURCE)
    ProductFactory.create(sku="85123A", name="WHITE HANGING HEART T-LIGHT HOLDER", price=Decimal("2.55"))
    User.objects.create_superuser("alice", password=PASSWORD)
    shop = f"{live_server.url}/shop/"

    page.goto(shop)
    # The banner's stylesheet and pz.js's widget stylesheet, both added by script with the nonce.
    expect(page.locator("#pz-consent")).to_have_css("position", "fixed")
    expect(page.locator("style[data-pz-widgets]")).to_have_count(1)
    expect(page.locator('[data-pz-placement="home"]')).not_to_have_attribute("data-pz-state", "loading")
    assert page.evaluate("document.querySelector('style[data-pz-widgets]').sheet?.cssRules.length ?? 0") > 10
    answer(page, "Accept all")  # the banner's script posts the choice (connect-src)
    assert blocked(page, console) == []

    page.goto(f"{shop}p/85123A/")
    expect(page.locator('[data-pz-placement="product-similar"]')).not_to_have_attribute("data-pz-state", "loading")
    assert blocked(page, console) == []
    page.get_by_role("button", name="Add to cart").click()  # form-action 'self'

    page.goto(f"{shop}cart/")
    expect(page.get_by_role("button", name="Update")).to_be_visible()
    expect(page.locator('[data-pz-placement="cart"]')).not_to_have_attribute("data-pz-state", "loading")
    assert page.evaluate("pz.flush().then(() => true)")  # the tracker's batch to the collector
    assert blocked(page, console) == []

    page.goto(f"{shop}privacy/")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    assert "/privacy/p/" in page.url
    assert blocked(page, console) == []

    page.goto(f"{live_server.url}/admin/login/?next=/admin/personalization/product/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("link", name="85123A")).to_be_visible()  # the change list
    page.get_by_role("checkbox", name="Select all objects on this page for an action").check()  # admin's actions.js
    expect(page.locator(".action-counter")).to_contain_text("1 of 1 selected")
    assert blocked(page, console) == []

    page.goto(f"{live_server.url}/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Personalization platform API")
    assert blocked(page, console) == []
