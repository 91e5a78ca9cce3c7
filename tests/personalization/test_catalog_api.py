from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from personalization.models import Category, Product
from tests.factories import ProductFactory
from tracking.services import SourceKeys, source_rotate_secret_key

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

BATCH = "/api/v1/catalog/products/batch"

MUG = {
    "sku": "MUG-1",
    "name": "Enamel mug",
    "description": "A camping mug.",
    "url": "https://shop.example.com/p/mug-1",
    "image_url": "https://cdn.example.com/mug-1.jpg",
    "price": "8.50",
    "currency": "gbp",
    "category": "Kitchen & Dining > Mugs & Cups",
    "brand": "Falcon",
    "tags": ["camping", "enamel"],
    "attributes": {"colour": "white", "capacity_ml": 350},
    "stock": 12,
}
LAMP = {"sku": "LAMP-1", "name": "Desk lamp", "price": 30, "category": "Home Decor > Lights"}


def snapshot() -> list[tuple[object, ...]]:
    return list(Product.objects.order_by("sku").values_list("sku", "name", "price", "is_active", "updated_at"))


# --- authentication --------------------------------------------------------------------------


def test_no_key_is_refused_and_nothing_is_stored(api_client: APIClient) -> None:
    response = api_client.post(BATCH, {"products": [MUG]}, format="json")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert Product.objects.count() == 0


def test_public_write_key_is_refused_with_a_reason(api_client: APIClient, source_keys: SourceKeys) -> None:
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {source_keys.write_key}")
    response = api_client.post(BATCH, {"products": [MUG]}, format="json")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"
    assert "public write key" in response.json()["detail"]
    assert Product.objects.count() == 0


@pytest.mark.parametrize("header", ["Bearer pzs_not-a-real-key", "Basic dXNlcjpwYXNz", "Bearer"])
def test_unknown_key_or_scheme_is_refused(api_client: APIClient, source_keys: SourceKeys, header: str) -> None:
    api_client.credentials(HTTP_AUTHORIZATION=header)
    assert api_client.get("/api/v1/catalog/products").status_code == 401


def test_rotated_key_stops_working(catalog_client: APIClient, source_keys: SourceKeys) -> None:
    assert catalog_client.get("/api/v1/catalog/products").status_code == 200
    new_key = source_rotate_secret_key(source=source_keys.source)
    assert catalog_client.get("/api/v1/catalog/products").status_code == 401
    catalog_client.credentials(HTTP_AUTHORIZATION=f"Bearer {new_key}")
    assert catalog_client.get("/api/v1/catalog/products").status_code == 200


def test_inactive_source_is_refused(catalog_client: APIClient, source_keys: SourceKeys) -> None:
    source_keys.source.is_active = False
    source_keys.source.save()
    assert catalog_client.get("/api/v1/catalog/products").status_code == 401


# --- upsert ------------------------------------------------------------------------------------


def test_upsert_creates_products_with_every_field(catalog_client: APIClient) -> None:
    response = catalog_client.post(BATCH, {"products": [MUG, LAMP]}, format="json")
    assert response.status_code == 200
    assert response.json() == {"created": 2, "updated": 0, "unchanged": 0, "rejected": []}
    mug = Product.objects.select_related("category").get(sku="MUG-1")
    assert (mug.name, mug.price, mug.currency, mug.brand) == ("Enamel mug", Decimal("8.50"), "GBP", "Falcon")
    assert mug.category is not None and mug.category.path == "Kitchen & Dining > Mugs & Cups"
    assert mug.category.parent is not None and mug.category.parent.path == "Kitchen & Dining"
    assert mug.tags == ["camping", "enamel"]
    assert mug.attributes == {"colour": "white", "capacity_ml": 350}
    assert (mug.stock, mug.in_stock, mug.is_active) == (12, True, True)
    lamp = Product.objects.get(sku="LAMP-1")
    assert (lamp.currency, lamp.stock, lamp.in_stock, lamp.tags) == ("GBP", None, True, [])
    assert Category.objects.count() == 4


def test_sending_the_same_payload_twice_changes_nothing(catalog_client: APIClient) -> None:
    catalog_client.post(BATCH, {"products": [MUG, LAMP]}, format="json")
    before = snapshot()
    response = catalog_client.post(BATCH, {"products": [MUG, LAMP]}, format="json")
    assert response.json() == {"created": 0, "updated": 0, "unchanged": 2, "rejected": []}
    assert snapshot() == before
    assert Category.objects.count() == 4


def test_update_changes_only_the_fields_sent(catalog_client: APIClient) -> None:
    catalog_client.post(BATCH, {"products": [MUG]}, format="json")
    response = catalog_client.post(
        BATCH, {"products": [{"sku": "MUG-1", "name": "Enamel mug", "price": "7.00", "stock": 0}]}, format="json"
    )
    assert response.json() == {"created": 0, "updated": 1, "unchanged": 0, "rejected": []}
    mug = Product.objects.get(sku="MUG-1")
    assert (mug.price, mug.stock, mug.in_stock) == (Decimal("7.00"), 0, False)
    assert (mug.brand, mug.tags, mug.url) == ("Falcon", ["camping", "enamel"], MUG["url"])


def test_bad_rows_are_reported_by_row_and_field_and_good_rows_are_stored(catalog_client: APIClient) -> None:
    rows = [
        MUG,
        {"sku": "BAD-1", "name": "No price"},
        LAMP,
        {"sku": "BAD-2", "name": "Negative", "price": "-1", "url": "javascript:alert(1)", "colour": "red"},
        "not an object",
        {**LAMP, "name": "Second lamp row"},
    ]
    response = catalog_client.post(BATCH, {"products": rows}, format="json")
    assert response.status_code == 200
    assert response.json() == {
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "rejected": [
            {"index": 1, "sku": "BAD-1", "fields": {"price": ["Field required"]}},
            {
                "index": 3,
                "sku": "BAD-2",
                "fields": {
                    "url": ["must be an http(s) URL or a path starting with /"],
                    "price": ["Input should be greater than or equal to 0"],
                    "colour": ["is not a known field"],
                },
            },
            {"index": 4, "sku": "", "fields": {"row": ["must be a JSON object"]}},
            {"index": 5, "sku": "LAMP-1", "fields": {"sku": ["appears more than once in this batch"]}},
        ],
    }
    assert sorted(Product.objects.values_list("sku", flat=True)) == ["LAMP-1", "MUG-1"]
    assert Product.objects.get(sku="LAMP-1").name == "Desk lamp"


def test_a_batch_with_only_bad_rows_is_a_400_and_stores_nothing(catalog_client: APIClient) -> None:
    response = catalog_client.post(BATCH, {"products": [{"sku": "X", "name": "x", "price": "1.999"}]}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_rows"
    assert body["fields"] == {"products.0.price": ["Decimal input should have no more than 2 decimal places"]}
    assert body["rejected"] == [{"index": 0, "sku": "X", "fields": body["rejected"][0]["fields"]}]
    assert Product.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "must be a non-empty list of product objects"),
        ({"products": []}, "must be a non-empty list of product objects"),
        ({"products": {"sku": "A"}}, "must be a non-empty list of product objects"),
        ([MUG], "must be a non-empty list of product objects"),
    ],
)
def test_malformed_body_names_the_field(catalog_client: APIClient, body: object, message: str) -> None:
    response = catalog_client.post(BATCH, body, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "detail": "The request has invalid fields.",
        "fields": {"products": [message]},
    }


def test_batch_over_the_limit_is_refused(catalog_client: APIClient, settings) -> None:
    settings.PZ_CATALOG_BATCH_LIMIT = 2
    response = catalog_client.post(BATCH, {"products": [MUG, LAMP, {**MUG, "sku": "M2"}]}, format="json")
    assert response.status_code == 400
    assert response.json()["fields"] == {"products": ["at most 2 rows per request, got 3"]}
    assert Product.objects.count() == 0


def test_invalid_json_is_a_parse_error(catalog_client: APIClient) -> None:
    response = catalog_client.post(BATCH, "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


def test_upsert_costs_the_same_queries_for_ten_rows_as_for_one(
    catalog_client: APIClient, django_assert_max_num_queries
) -> None:
    catalog_client.post(BATCH, {"products": [LAMP]}, format="json")  # categories and source exist now
    rows = [{**LAMP, "sku": f"LAMP-{n}", "name": f"Lamp {n}"} for n in range(10)]
    with django_assert_max_num_queries(12):
        response = catalog_client.post(BATCH, {"products": rows}, format="json")
    assert response.json()["created"] == 9


# --- deactivate, read --------------------------------------------------------------------------


def test_deactivate_by_list_reports_what_happened(catalog_client: APIClient) -> None:
    ProductFactory.create(sku="A")
    ProductFactory.create(sku="B", is_active=False)
    response = catalog_client.post("/api/v1/catalog/products/deactivate", {"skus": ["A", "B", "Z"]}, format="json")
    assert response.status_code == 200
    assert response.json() == {"deactivated": ["A"], "already_inactive": ["B"], "unknown": ["Z"]}
    assert list(Product.objects.order_by("sku").values_list("sku", "is_active")) == [("A", False), ("B", False)]


def test_deactivate_needs_a_list_of_skus(catalog_client: APIClient) -> None:
    response = catalog_client.post("/api/v1/catalog/products/deactivate", {"skus": "A"}, format="json")
    assert response.status_code == 400
    assert response.json()["fields"] == {"skus": ["must be a non-empty list of SKUs"]}


def test_delete_deactivates_one_product(catalog_client: APIClient) -> None:
    ProductFactory.create(sku="A")
    response = catalog_client.delete("/api/v1/catalog/products/A")
    assert response.status_code == 200
    assert response.json()["is_active"] is False
    assert Product.objects.get(sku="A").is_active is False
    assert catalog_client.delete("/api/v1/catalog/products/NOPE").status_code == 404


def test_retrieve_by_sku(catalog_client: APIClient) -> None:
    catalog_client.post(BATCH, {"products": [MUG]}, format="json")
    body = catalog_client.get("/api/v1/catalog/products/MUG-1").json()
    assert body["sku"] == "MUG-1"
    assert body["price"] == "8.50"
    assert body["category"] == "Kitchen & Dining > Mugs & Cups"
    response = catalog_client.get("/api/v1/catalog/products/NOPE")
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "detail": "No product with SKU 'NOPE'.", "fields": {}}


def test_list_filters_and_pages(catalog_client: APIClient) -> None:
    catalog_client.post(
        BATCH,
        {"products": [MUG, LAMP, {**LAMP, "sku": "LAMP-2", "name": "Floor lamp", "is_active": False}]},
        format="json",
    )
    active = catalog_client.get("/api/v1/catalog/products", {"is_active": "true"}).json()
    assert [p["sku"] for p in active["results"]] == ["MUG-1", "LAMP-1"]
    decor = catalog_client.get("/api/v1/catalog/products", {"category": "Home Decor"}).json()
    assert [p["sku"] for p in decor["results"]] == ["LAMP-1", "LAMP-2"]
    first = catalog_client.get("/api/v1/catalog/products", {"limit": 2}).json()
    assert [p["sku"] for p in first["results"]] == ["MUG-1", "LAMP-1"]
    second = catalog_client.get(first["next"]).json()
    assert [p["sku"] for p in second["results"]] == ["LAMP-2"]
    assert second["next"] is None


def test_list_refuses_bad_filters(catalog_client: APIClient) -> None:
    response = catalog_client.get("/api/v1/catalog/products", {"is_active": "maybe"})
    assert response.status_code == 400
    assert response.json()["fields"] == {"is_active": ["must be true or false"]}
    response = catalog_client.get("/api/v1/catalog/products", {"updated_since": "yesterday"})
    assert response.json()["fields"] == {"updated_since": ["must be an ISO 8601 date-time with a time zone"]}


def test_categories_list_the_tree(catalog_client: APIClient) -> None:
    catalog_client.post(BATCH, {"products": [MUG]}, format="json")
    assert catalog_client.get("/api/v1/catalog/categories").json() == [
        {"path": "Kitchen & Dining", "name": "Kitchen & Dining", "parent": None, "depth": 0, "slug": "kitchen-dining"},
        {
            "path": "Kitchen & Dining > Mugs & Cups",
            "name": "Mugs & Cups",
            "parent": "Kitchen & Dining",
            "depth": 1,
            "slug": "kitchen-dining/mugs-cups",
        },
    ]


# --- documentation -----------------------------------------------------------------------------


def test_openapi_schema_documents_the_catalog(api_client: APIClient) -> None:
    response = api_client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json()
    assert {"/api/v1/catalog/products", "/api/v1/catalog/products/batch", "/api/v1/catalog/products/{sku}"} <= set(
        schema["paths"]
    )
    assert schema["components"]["securitySchemes"]["secretKey"]["scheme"] == "bearer"
    batch_body = schema["paths"]["/api/v1/catalog/products/batch"]["post"]["requestBody"]
    reference = batch_body["content"]["application/json"]["schema"]["$ref"]
    batch_schema = schema["components"]["schemas"][reference.rsplit("/", 1)[1]]
    assert batch_schema["required"] == ["products"]
    row_reference = batch_schema["properties"]["products"]["items"]["$ref"]
    row_schema = schema["components"]["schemas"][row_reference.rsplit("/", 1)[1]]
    assert {"sku", "name", "price", "category", "tags", "attributes", "stock"} <= set(row_schema["properties"])
    assert set(row_schema["required"]) == {"sku", "name", "price"}


def test_interactive_docs_are_served_without_a_cdn(api_client: APIClient) -> None:
    response = api_client.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui" in page
    assert "cdn.jsdelivr.net" not in page


def test_updating_many_products_costs_a_fixed_number_of_queries(
    catalog_client: APIClient, django_assert_max_num_queries
) -> None:
    rows = [{**LAMP, "sku": f"LAMP-{n}", "name": f"Lamp {n}"} for n in range(20)]
    catalog_client.post(BATCH, {"products": rows}, format="json")
    changed = [{**row, "price": "31.00", "category": "Home Decor > Lamps"} for row in rows]
    with django_assert_max_num_queries(12):
        response = catalog_client.post(BATCH, {"products": changed}, format="json")
    assert response.json() == {"created": 0, "updated": 20, "unchanged": 0, "rejected": []}
    assert set(Product.objects.values_list("price", "category__path")) == {(Decimal("31.00"), "Home Decor > Lamps")}


# --- input the database cannot hold --------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"products": [{"sku": "MUG-1", "name": "Mug\\u0000", "price": 1}]}', "products.0.name"),
        (b'{"products": [{"sku": "MUG-1", "name": "Mug", "price": 1, "attributes": {"\\u0000": 1}}]}',
         "products.0.attributes.\x00"),
        (b'{"products": [' + b"[" * 3000 + b"]" * 3000 + b"]}", "body"),
    ],
)  # fmt: skip
def test_a_body_the_database_cannot_store_is_a_400_naming_the_field(
    catalog_client: APIClient, body: bytes, field: str
) -> None:
    response = catalog_client.post(BATCH, body, content_type="application/json")
    assert response.status_code == 400
    assert list(response.json()["fields"]) == [field]
    assert snapshot() == []


def test_a_stock_past_the_column_is_refused_by_row(catalog_client: APIClient) -> None:
    response = catalog_client.post(BATCH, {"products": [{**LAMP, "stock": 10**12}]}, format="json")
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["products.0.stock"]
    assert snapshot() == []


@pytest.mark.parametrize("value", ["2024-01-01T00:00:00+25:00", "2024-01-01T00:00:00+99:99", "2024-13-01T00:00:00Z"])
def test_an_updated_since_that_is_no_time_is_a_400(catalog_client: APIClient, value: str) -> None:
    response = catalog_client.get("/api/v1/catalog/products", {"updated_since": value})
    assert response.status_code == 400
    assert response.json()["fields"] == {"updated_since": ["must be an ISO 8601 date-time with a time zone"]}


@pytest.mark.parametrize("value", ["9999-12-31T23:00:00-16:30", "0001-01-01T00:00:00+01:00"])
def test_an_updated_since_past_the_years_a_time_can_hold_in_utc_is_a_400(catalog_client: APIClient, value: str) -> None:
    response = catalog_client.get("/api/v1/catalog/products", {"updated_since": value})
    assert response.status_code == 400
    assert response.json()["fields"] == {"updated_since": ["must be an ISO 8601 date-time with a time zone"]}


def test_an_updated_since_with_an_offset_postgresql_does_not_take_is_read_in_utc(catalog_client: APIClient) -> None:
    """Python takes offsets up to ±23:59, PostgreSQL up to ±15:59: the time is compared in UTC."""
    ProductFactory(sku="MUG-1")  # updated now, long after the time asked for
    response = catalog_client.get("/api/v1/catalog/products", {"updated_since": "2024-06-09T09:08:58-16:30"})
    assert response.status_code == 200
    assert [product["sku"] for product in response.json()["results"]] == ["MUG-1"]


def test_a_nul_in_a_query_or_a_path_is_a_400(catalog_client: APIClient) -> None:
    ProductFactory(sku="MUG-1")
    answers = [
        catalog_client.get("/api/v1/catalog/products?category=a%00b"),
        catalog_client.get("/api/v1/catalog/products/MUG%001"),
        catalog_client.delete("/api/v1/catalog/products/MUG%001"),
    ]
    assert [answer.status_code for answer in answers] == [400, 400, 400]
    assert Product.objects.get().is_active is True
