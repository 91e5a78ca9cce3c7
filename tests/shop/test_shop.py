import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.conf import settings
from django.test import Client
from django.utils.html import escapejs

from personalization.models import Placement
from personalization.services import category_ensure_paths
from personalization.templatetags.shop import display_name
from tests.conftest import ROOT
from tests.factories import CustomerFactory, ProductFactory
from tracking.authentication import user_token
from tracking.models import Order
from tracking.services import OrderIn, OrderLineIn, order_bulk_record, source_create

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


@pytest.fixture
def catalog() -> dict[str, object]:
    categories = category_ensure_paths(paths=["Home Decor > Candles & Holders", "Kitchen & Dining > Mugs & Cups"])
    holder = ProductFactory.create(
        sku="85123A",
        name="WHITE HANGING HEART T-LIGHT HOLDER",
        price=Decimal("2.55"),
        category=categories["Home Decor > Candles & Holders"],
    )
    mug = ProductFactory.create(
        sku="37370",
        name="RETRO COFFEE MUGS ASSORTED",
        price=Decimal("1.06"),
        category=categories["Kitchen & Dining > Mugs & Cups"],
    )
    hidden = ProductFactory.create(sku="99999", name="DISCONTINUED VASE", is_active=False, category=mug.category)
    customer = CustomerFactory.create(user_id="17850", country="GB")
    order_bulk_record(
        orders=[
            OrderIn(
                order_id="536365",
                placed_at=datetime(2011, 12, 1, 8, 26, tzinfo=UTC),
                user_id="17850",
                lines=[OrderLineIn("85123A", holder.name, 6, Decimal("2.55"))],
            )
        ],
        origin="import",
    )
    return {"holder": holder, "mug": mug, "hidden": hidden, "customer": customer}


def test_home_shows_bestsellers_and_departments(client: Client, catalog: dict[str, object]) -> None:
    response = client.get("/shop/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "White Hanging Heart T-Light Holder" in page
    assert "£2.55" in page
    assert [p.sku for p in response.context["bestsellers"]] == ["85123A"]
    assert [d["name"] for d in response.context["departments"]] == ["Home Decor", "Kitchen & Dining"]
    assert 'data-pz-placement="home"' in page


def test_root_redirects_to_the_shop(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/shop/"


def test_category_page_lists_its_subtree_only_active(client: Client, catalog: dict[str, object]) -> None:
    response = client.get("/shop/c/kitchen-dining/")
    assert response.status_code == 200
    assert [p.sku for p in response.context["page"]] == ["37370"]
    assert [c.name for c in response.context["children"]] == ["Mugs & Cups"]
    assert client.get("/shop/c/no-such-thing/").status_code == 404


def test_product_page_and_inactive_product(client: Client, catalog: dict[str, object]) -> None:
    response = client.get("/shop/p/85123A/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "White Hanging Heart T-Light Holder" in page
    assert 'data-pz-product="85123A"' in page
    assert [c.name for c in response.context["ancestors"]] == ["Home Decor", "Candles & Holders"]
    assert client.get("/shop/p/99999/").status_code == 404


def test_search_matches_words_in_names(client: Client, catalog: dict[str, object]) -> None:
    response = client.get("/shop/search/", {"q": "heart holder"})
    assert [p.sku for p in response.context["page"]] == ["85123A"]
    assert client.get("/shop/search/", {"q": "vase"}).context["page"].paginator.count == 0


def test_product_names_are_escaped(client: Client) -> None:
    ProductFactory.create(sku="XSS", name='<img src=x onerror="alert(1)">')
    page = client.get("/shop/p/XSS/").content.decode()
    assert "<img src=x onerror" not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page


def test_forms_need_a_csrf_token(catalog: dict[str, object]) -> None:
    strict = Client(enforce_csrf_checks=True)
    assert strict.post("/shop/cart/add/", {"sku": "85123A", "quantity": 1}).status_code == 403
    assert strict.post("/shop/customers/browse-as/", {"user_id": "17850"}).status_code == 403


def test_cart_checkout_records_an_order_for_the_browsed_customer(client: Client, catalog: dict[str, object]) -> None:
    client.post("/shop/customers/browse-as/", {"user_id": "17850"})
    client.post("/shop/cart/add/", {"sku": "85123A", "quantity": "2"})
    client.post("/shop/cart/add/", {"sku": "37370", "quantity": "3"})
    client.post("/shop/cart/update/", {"sku": "37370", "quantity": "4"})
    cart = client.get("/shop/cart/")
    assert [(line.product.sku, line.quantity) for line in cart.context["lines"]] == [("85123A", 2), ("37370", 4)]
    assert cart.context["total"] == Decimal("9.34")

    response = client.post("/shop/checkout/")
    assert response.status_code == 302
    order = Order.objects.exclude(order_id="536365").get()
    assert response["Location"] == f"/shop/orders/{order.order_id}/"
    assert order.customer is not None
    assert (order.origin, order.status, order.revenue, order.customer.user_id) == (
        "shop",
        "completed",
        Decimal("9.34"),
        "17850",
    )
    assert list(order.lines.values_list("position", "sku", "quantity", "unit_price")) == [
        (1, "85123A", 2, Decimal("2.55")),
        (2, "37370", 4, Decimal("1.06")),
    ]
    assert client.get(response["Location"]).status_code == 200
    assert client.get("/shop/cart/").context["lines"] == []


def test_an_order_page_is_private_to_the_session_that_placed_it(client: Client, catalog: dict[str, object]) -> None:
    client.post("/shop/cart/add/", {"sku": "85123A", "quantity": "1"})
    location = client.post("/shop/checkout/")["Location"]
    order = Order.objects.get(origin="shop")
    assert order.customer is None and order.anonymous_id
    assert Client().get(location).status_code == 404
    assert Client().get("/shop/orders/536365/").status_code == 404


@pytest.mark.parametrize("quantity", ["0", "-1", "1000", "two", ""])
def test_bad_quantities_add_nothing(client: Client, catalog: dict[str, object], quantity: str) -> None:
    client.post("/shop/cart/add/", {"sku": "85123A", "quantity": quantity})
    assert client.get("/shop/cart/").context["lines"] == []


def test_inactive_or_unknown_products_cannot_be_added(client: Client, catalog: dict[str, object]) -> None:
    client.post("/shop/cart/add/", {"sku": "99999", "quantity": "1"})
    client.post("/shop/cart/add/", {"sku": "NOPE", "quantity": "1"})
    assert client.get("/shop/cart/").context["lines"] == []


def test_empty_cart_cannot_check_out(client: Client, catalog: dict[str, object]) -> None:
    assert client.post("/shop/checkout/")["Location"] == "/shop/cart/"
    assert Order.objects.count() == 1


def test_browse_as_lists_customers_and_shows_their_orders(client: Client, catalog: dict[str, object]) -> None:
    listing = client.get("/shop/customers/")
    assert [(c.user_id, c.orders) for c in listing.context["customers"]] == [("17850", 1)]
    client.post("/shop/customers/browse-as/", {"user_id": "17850"})
    account = client.get("/shop/account/")
    assert [o.order_id for o in account.context["orders"]] == ["536365"]
    assert "Customer 17850" in client.get("/shop/").content.decode()


def test_browse_as_an_unknown_customer_is_refused(client: Client, catalog: dict[str, object]) -> None:
    response = client.post("/shop/customers/browse-as/", {"user_id": "00000"}, follow=True)
    assert "There is no customer 00000." in response.content.decode()
    assert client.get("/shop/account/")["Location"] == "/shop/customers/"


def test_category_lists_the_most_popular_first_by_default(client: Client, catalog: dict[str, object]) -> None:
    ProductFactory.create(sku="A0", name="AAA FIRST BY NAME", category=catalog["holder"].category)  # type: ignore[attr-defined]
    page = client.get("/shop/c/home-decor/").context["page"]
    assert [p.sku for p in page] == ["85123A", "A0"]  # 85123A is in one order, A0 in none
    by_name = client.get("/shop/c/home-decor/", {"sort": "name"}).context["page"]
    assert [p.sku for p in by_name] == ["A0", "85123A"]


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("WHITE HANGING HEART T-LIGHT HOLDER", "White Hanging Heart T-Light Holder"),
        ("JUMBO BAG 50'S CHRISTMAS", "Jumbo Bag 50's Christmas"),
        ("SET/6 RED SPOTTY PAPER CUPS", "Set/6 Red Spotty Paper Cups"),
        ("iPhone 15 case", "iPhone 15 case"),
    ],
)
def test_shouting_names_are_shown_in_title_case(name: str, shown: str) -> None:
    assert display_name(name) == shown


def test_the_widgets_ask_in_the_browsed_customers_name_only_with_their_token(
    client: Client, catalog: dict[str, object]
) -> None:
    keys = source_create(name=settings.PZ_DEMO_SOURCE)
    anonymous = client.get("/shop/").content.decode()
    assert f"pz('init', '{escapejs(keys.write_key)}'" in anonymous
    assert "userId:" not in anonymous and "userToken" not in anonymous

    client.post("/shop/customers/browse-as/", {"user_id": "17850"})
    page = client.get("/shop/").content.decode()
    assert "userId: '17850'," in page
    assert f"userToken: '{user_token(keys.source, '17850')}'," in page
    assert "widgets: {productUrl: '/shop/p/{product_id}/'}" in page


def test_every_slot_of_the_shop_names_a_placement_that_exists() -> None:
    slots = {
        key
        for template in (ROOT / "templates" / "shop").glob("*.html")
        for key in re.findall(r'data-pz-placement="([^"]+)"', template.read_text())
    }
    assert slots == {"home", "category", "product-similar", "product-together", "cart", "post-purchase"}
    assert slots <= set(Placement.objects.values_list("key", flat=True))
