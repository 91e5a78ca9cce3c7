"""The consent banner (``static/pz/pz-consent.js``) in a real browser, on the demo shop.

Debian's Chromium (``/usr/bin/chromium``) driven by Playwright, against the live server running the
real views on PostgreSQL and Redis. The live server reads what a test writes, so the tests are
transactional; ``serialized_rollback`` puts back the purposes and the first policy version that
migration 0003 creates, which the flush after a transactional test removes.

While Playwright's sync API runs, this thread has an asyncio loop marked as running. Django then
keeps the thread's database connections in a separate, context-local slot, which does not hold the
serialized data. So Playwright runs only inside each test (the ``browser`` fixture), after the
database is restored and before it is flushed.
"""

import json
from typing import Any

import pytest
from django.conf import settings
from playwright.sync_api import Locator, Page, expect
from pytest_django.live_server_helper import LiveServer

from consent.models import ConsentRecord, PolicyVersion, Purpose
from consent.services import policy_version_publish, purposes_changed
from tests.conftest import NewPage
from tests.factories import ProductFactory
from tracking.services import source_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

GPC_ON = "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})"
TITLE = "Your privacy choices"
ERROR = "Your choice could not be saved. Please check your connection and try again."
XSS = '<img src=x onerror="window.__pwned=1">'
# An answer given under an earlier policy version (so the banner asks again), as the banner stores it.
OLD_ANSWER = {
    "version": 0,
    "choices": {"necessary": True, "analytics": True, "personalization": False, "marketing": True},
}
SEED_OLD_ANSWER = f"localStorage.pz_consent || localStorage.setItem('pz_consent', {json.dumps(json.dumps(OLD_ANSWER))})"

Record = tuple[str, str, bool, str, bool, int | None]


@pytest.fixture
def shop(live_server: LiveServer) -> str:
    """The demo shop's home page, with the demo source (whose write key embeds the banner)."""
    source_create(name=settings.PZ_DEMO_SOURCE)
    ProductFactory.create(name="WHITE HANGING HEART T-LIGHT HOLDER")
    ProductFactory.create(name="RETRO COFFEE MUGS ASSORTED")
    return f"{live_server.url}/shop/"


def banner(page: Page) -> Locator:
    return page.get_by_role("dialog", name=TITLE)


def anonymous_id(page: Page) -> str:
    """The shop session's anonymous id, as the page hands it to the banner."""
    value = page.locator("script[data-write-key]").get_attribute("data-anonymous-id")
    assert value
    return value


def records() -> list[Record]:
    rows = ConsentRecord.objects.values_list(
        "anonymous_id", "purpose_id", "granted", "source", "gpc", "policy_version__version"
    )
    return sorted(
        (visitor, str(purpose), granted, source, gpc, version)
        for visitor, purpose, granted, source, gpc, version in rows
    )


def stored_answer(page: Page) -> Any:
    return json.loads(page.evaluate("localStorage.getItem('pz_consent') || 'null'"))


def answer(page: Page, button: str) -> None:
    """Click one of the banner's buttons and wait until the server has recorded the choice."""
    with page.expect_response("**/api/v1/consent/choices") as response:
        banner(page).get_by_role("button", name=button).click()
    assert response.value.status == 200
    expect(banner(page)).to_be_hidden()


def test_reject_all_records_withdrawals_and_is_not_asked_again(page: Page, shop: str) -> None:
    page.goto(shop)
    expect(banner(page)).to_be_visible()
    expect(banner(page)).to_have_attribute("aria-modal", "false")
    expect(page.get_by_role("heading", name=TITLE)).to_be_focused()
    visitor = anonymous_id(page)

    answer(page, "Reject all")

    assert records() == [
        (visitor, "analytics", False, "banner", False, 1),
        (visitor, "marketing", False, "banner", False, 1),
        (visitor, "personalization", False, "banner", False, 1),
    ]
    stored = stored_answer(page)
    assert stored["version"] == 1
    assert stored["choices"] == {"necessary": True, "analytics": False, "personalization": False, "marketing": False}

    page.reload()
    page.evaluate("window.pzConsent.ready")  # the banner has read /config and decided
    expect(banner(page)).to_be_hidden()
    assert page.evaluate("[pzConsent.get('necessary'), pzConsent.get('analytics'), pzConsent.get('nope')]") == [
        True,
        False,
        None,
    ]
    assert len(records()) == 3


def test_accept_all_records_grants(page: Page, shop: str) -> None:
    PolicyVersion.objects.filter(version=1).update(url="https://shop.example/privacy")
    page.goto(shop)
    expect(banner(page).get_by_role("link", name="Privacy policy")).to_have_attribute(
        "href", "https://shop.example/privacy"
    )
    page.evaluate("document.addEventListener('pz:consent', (e) => { window.__detail = e.detail })")
    visitor = anonymous_id(page)

    answer(page, "Accept all")

    assert records() == [
        (visitor, "analytics", True, "banner", False, 1),
        (visitor, "marketing", True, "banner", False, 1),
        (visitor, "personalization", True, "banner", False, 1),
    ]
    assert page.evaluate("window.__detail") == {
        "choices": {"necessary": True, "analytics": True, "personalization": True, "marketing": True},
        "version": 1,
    }


def test_choose_with_the_keyboard_saves_each_choice(page: Page, shop: str) -> None:
    page.goto(shop)
    dialog = banner(page)
    choose = dialog.get_by_role("button", name="Choose")
    necessary = dialog.get_by_role("checkbox", name="Strictly necessary")
    analytics = dialog.get_by_role("checkbox", name="Analytics")
    personalization = dialog.get_by_role("checkbox", name="Personalization")
    marketing = dialog.get_by_role("checkbox", name="Marketing")
    save = dialog.get_by_role("button", name="Save choices")
    expect(analytics).to_be_hidden()

    choose.focus()
    page.keyboard.press("Enter")
    expect(choose).to_have_attribute("aria-expanded", "true")
    expect(necessary).to_be_checked()
    expect(necessary).to_be_disabled()
    expect(dialog.get_by_text("Always on", exact=True)).to_be_visible()
    page.keyboard.press("Tab")
    expect(analytics).to_be_focused()
    # Escape collapses the panel and gives focus back to "Choose": it records nothing.
    page.keyboard.press("Escape")
    expect(analytics).to_be_hidden()
    expect(choose).to_be_focused()
    expect(choose).to_have_attribute("aria-expanded", "false")
    expect(dialog).to_be_visible()

    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(analytics).to_be_focused()
    page.keyboard.press("Tab")
    expect(personalization).to_be_focused()
    page.keyboard.press("Space")
    expect(personalization).to_be_checked()
    expect(analytics).not_to_be_checked()
    expect(marketing).not_to_be_checked()
    page.keyboard.press("Tab")
    expect(marketing).to_be_focused()
    page.keyboard.press("Tab")
    expect(save).to_be_focused()
    assert records() == []

    visitor = anonymous_id(page)
    with page.expect_response("**/api/v1/consent/choices") as response:
        page.keyboard.press("Enter")
    assert response.value.status == 200
    expect(dialog).to_be_hidden()
    assert records() == [
        (visitor, "analytics", False, "banner", False, 1),
        (visitor, "marketing", False, "banner", False, 1),
        (visitor, "personalization", True, "banner", False, 1),
    ]


def test_a_new_policy_version_asks_again(new_page: NewPage, page: Page, shop: str) -> None:
    page.goto(shop)
    visitor = anonymous_id(page)
    answer(page, "Accept all")
    policy = PolicyVersion.objects.create(version=2, title="Privacy policy", url="/privacy-policy")
    policy.purposes.set(Purpose.objects.all())
    policy_version_publish(policy_version=policy, published_by=None)

    # /config may be cached by the browser for five minutes (Cache-Control), so the visitor comes
    # back in a new browser session that keeps the shop's cookie and localStorage.
    later = new_page(storage_state=page.context.storage_state())
    later.goto(shop)
    expect(banner(later)).to_be_visible()
    assert anonymous_id(later) == visitor
    assert stored_answer(later)["version"] == 1

    answer(later, "Reject all")
    assert records() == [
        (visitor, "analytics", False, "banner", False, 2),
        (visitor, "analytics", True, "banner", False, 1),
        (visitor, "marketing", False, "banner", False, 2),
        (visitor, "marketing", True, "banner", False, 1),
        (visitor, "personalization", False, "banner", False, 2),
        (visitor, "personalization", True, "banner", False, 1),
    ]
    assert stored_answer(later)["version"] == 2


def test_global_privacy_control_withdraws_marketing_once(new_page: NewPage, shop: str) -> None:
    page = new_page(extra_http_headers={"Sec-GPC": "1"})
    page.context.add_init_script(GPC_ON)
    page.context.add_init_script(SEED_OLD_ANSWER)
    with page.expect_response("**/api/v1/consent/gpc") as gpc:
        page.goto(shop)
    visitor = anonymous_id(page)
    # The page request's Sec-GPC header withdrew marketing already; the banner's call adds nothing.
    assert gpc.value.status == 200
    assert gpc.value.json() == {"withdrawn": []}
    assert records() == [(visitor, "marketing", False, "gpc", True, 1)]
    assert json.loads(page.evaluate("localStorage.getItem('pz_consent_gpc')"))["anonymousId"] == visitor

    dialog = banner(page)
    expect(dialog.get_by_text("Your browser's Global Privacy Control signal is honoured")).to_have_text(
        "Your browser's Global Privacy Control signal is honoured: Marketing are off unless you turn them on."
    )
    # The boxes start from the earlier answer, except that GPC turns marketing off.
    dialog.get_by_role("button", name="Choose").click()
    expect(dialog.get_by_role("checkbox", name="Analytics")).to_be_checked()
    expect(dialog.get_by_role("checkbox", name="Personalization")).not_to_be_checked()
    expect(dialog.get_by_role("checkbox", name="Marketing")).not_to_be_checked()

    # "Accept all" is an explicit choice: it grants marketing too, and the grant stands.
    with page.expect_request("**/api/v1/consent/choices") as request:
        answer(page, "Accept all")
    assert request.value.post_data_json == {
        "writeKey": page.locator("script[data-write-key]").get_attribute("data-write-key"),
        "anonymousId": visitor,
        "choices": {"analytics": True, "personalization": True, "marketing": True},
        "source": "banner",
        "policyVersion": 1,
        "gpc": True,
    }
    assert records() == [
        (visitor, "analytics", True, "banner", True, 1),
        (visitor, "marketing", False, "gpc", True, 1),
        (visitor, "marketing", True, "banner", True, 1),
        (visitor, "personalization", True, "banner", True, 1),
    ]


def test_server_texts_are_shown_as_text_never_as_html(page: Page, shop: str) -> None:
    Purpose.objects.filter(key="analytics").update(description=XSS)
    PolicyVersion.objects.filter(version=1).update(url="javascript:window.__pwned=1")
    purposes_changed()

    page.goto(shop)
    dialog = banner(page)
    dialog.get_by_role("button", name="Choose").click()
    expect(dialog.get_by_text(XSS, exact=True)).to_be_visible()
    expect(dialog.locator("img")).to_have_count(0)
    expect(dialog.get_by_role("link")).to_have_count(0)  # a javascript: policy URL is not linked
    assert page.evaluate("window.__pwned") is None


def test_cookie_settings_reopens_the_banner(page: Page, shop: str) -> None:
    page.goto(shop)
    visitor = anonymous_id(page)
    answer(page, "Accept all")

    footer = page.get_by_role("button", name="Cookie settings")
    footer.click()
    dialog = banner(page)
    expect(dialog).to_be_visible()
    expect(page.get_by_role("heading", name=TITLE)).to_be_focused()
    dialog.get_by_role("button", name="Choose").click()
    for purpose in ("Analytics", "Personalization", "Marketing"):
        expect(dialog.get_by_role("checkbox", name=purpose)).to_be_checked()

    answer(page, "Reject all")
    expect(footer).to_be_focused()  # focus goes back where it was
    assert records() == [
        (visitor, "analytics", False, "banner", False, 1),
        (visitor, "analytics", True, "banner", False, 1),
        (visitor, "marketing", False, "banner", False, 1),
        (visitor, "marketing", True, "banner", False, 1),
        (visitor, "personalization", False, "banner", False, 1),
        (visitor, "personalization", True, "banner", False, 1),
    ]


def test_a_failed_request_keeps_the_banner_open_and_stores_nothing(page: Page, shop: str) -> None:
    page.route("**/api/v1/consent/choices", lambda route: route.abort())
    page.goto(shop)
    dialog = banner(page)
    with page.expect_event("requestfailed"):
        dialog.get_by_role("button", name="Accept all").click()

    expect(dialog.get_by_role("alert")).to_have_text(ERROR)
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Accept all")).to_be_enabled()
    assert stored_answer(page) is None
    assert records() == []

    # Once the API answers again, the same banner records the choice.
    page.unroute("**/api/v1/consent/choices")
    answer(page, "Accept all")
    assert len(records()) == 3
    assert stored_answer(page)["choices"]["analytics"] is True


def test_other_languages_and_blocked_storage_do_not_break_the_page(page: Page, shop: str) -> None:
    errors: list[Exception] = []
    page.on("pageerror", lambda error: errors.append(error))
    page.add_init_script(
        """
        window.pzConsentConfig = {lang: "fr-CA", strings: {title: "Vos cookies"}};
        for (const name of ["getItem", "setItem"]) {
          Storage.prototype[name] = () => { throw new DOMException("blocked", "SecurityError"); };
        }
        """
    )
    page.goto(shop)
    dialog = page.get_by_role("dialog", name="Vos cookies")
    expect(dialog.get_by_role("button", name="Tout accepter")).to_be_visible()
    visitor = anonymous_id(page)

    with page.expect_response("**/api/v1/consent/choices") as response:
        dialog.get_by_role("button", name="Tout refuser").click()
    assert response.value.status == 200
    expect(dialog).to_be_hidden()
    assert errors == []
    assert records() == [
        (visitor, "analytics", False, "banner", False, 1),
        (visitor, "marketing", False, "banner", False, 1),
        (visitor, "personalization", False, "banner", False, 1),
    ]
