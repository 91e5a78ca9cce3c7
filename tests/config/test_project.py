"""Project-wide guarantees: migrations match the models, the admin pages render, production hides the demo."""

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from tests.conftest import run_django
from tests.factories import CustomerFactory, ProductFactory
from tracking.models import Source
from tracking.services import OrderIn, OrderLineIn, order_record, secret_key_digest, source_create


@pytest.mark.django_db
def test_migrations_match_the_models() -> None:
    call_command("makemigrations", "--check", "--dry-run", stdout=StringIO())


@pytest.mark.embedded
@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "/admin/",
        "/admin/personalization/product/",
        "/admin/personalization/product/?department=1&q=mug",
        "/admin/personalization/category/",
        "/admin/tracking/customer/",
        "/admin/tracking/order/",
        "/admin/tracking/source/",
        "/admin/tracking/source/add/",
        "/admin/personalization/product/import/",
        "/admin/personalization/product/export/",
        "/admin/tracking/event/",
        "/admin/tracking/profile/",
        "/admin/tracking/ingestcount/",
    ],
)
def test_admin_pages_render(admin_client: Client, url: str) -> None:
    product = ProductFactory.create(sku="M1", name="Mug")
    CustomerFactory.create(user_id="17850")
    order_record(
        order=OrderIn(
            order_id="1",
            placed_at=product.created_at,
            user_id="17850",
            lines=[OrderLineIn("M1", "Mug", 1, product.price)],
        ),
        origin="import",
    )
    source_create(name="Web")
    assert admin_client.get(url).status_code == 200


@pytest.mark.embedded
@pytest.mark.django_db
def test_order_admin_is_read_only(admin_client: Client) -> None:
    product = ProductFactory.create(sku="M1")
    order = order_record(
        order=OrderIn(order_id="1", placed_at=product.created_at, lines=[OrderLineIn("M1", "Mug", 1, product.price)]),
        origin="import",
    )
    assert admin_client.get("/admin/tracking/order/add/").status_code == 403
    page = admin_client.get(f"/admin/tracking/order/{order.pk}/change/")
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()


@pytest.mark.embedded
@pytest.mark.django_db
def test_source_added_in_the_admin_shows_its_keys_once(admin_client: Client) -> None:
    response = admin_client.post("/admin/tracking/source/add/", {"name": "Mobile app"}, follow=True)
    shown = re.search(r"it is not shown again\): (pzs_[\w-]+)", response.content.decode())
    assert shown is not None
    source = Source.objects.get(name="Mobile app")
    assert source.secret_key_digest == secret_key_digest(shown.group(1))
    for url in ["/admin/tracking/source/", f"/admin/tracking/source/{source.pk}/change/"]:
        page = admin_client.get(url).content.decode()
        assert shown.group(1) not in page
        assert source.secret_key_prefix in page  # enough to recognise the key


def test_production_serves_no_demo_shop() -> None:
    result = run_django(
        "import django; django.setup(); from django.test import Client; c = Client(); "
        "print(c.get('/shop/', secure=True).status_code, c.get('/', secure=True)['Location'])",
        DEBUG="0",
        SECRET_KEY="x7Hq2-production-secret-for-tests-only-9fK3mPz8LwR4tY6uV1bN0cX5aS2dF7gH",
        ALLOWED_HOSTS="testserver",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["404", "/admin/"]


def test_the_openapi_schema_is_valid_and_warns_of_nothing() -> None:
    """Every endpoint documented, and the document valid OpenAPI (drf-spectacular checks it
    against the specification's own schema; a warning, e.g. an undocumented view, fails too)."""
    out = StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    assert out.getvalue().startswith("openapi: 3.1.0")
