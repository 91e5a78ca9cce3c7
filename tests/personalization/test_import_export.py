"""Import and export of products and categories in the admin (django-import-export)."""

import json
from decimal import Decimal
from io import BytesIO

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from personalization.models import Category, Product
from tests.factories import ProductFactory

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

PRODUCT_IMPORT = "/admin/personalization/product/import/"
CSV, XLSX, JSON = "0", "1", "2"


def upload(client: Client, url: str, name: str, content: bytes, file_format: str = CSV):
    return client.post(url, {"import_file": SimpleUploadedFile(name, content), "format": file_format, "resource": "0"})


def test_dry_run_shows_row_errors_and_writes_nothing(admin_client: Client) -> None:
    content = (
        b"sku,name,price,currency,category,tags,stock\n"
        b'A1,Mug,2.50,GBP,Kitchen > Mugs,"gift, blue",3\n'
        b"B2,Bad price,abc,GBP,Kitchen > Plates,,\n"
        b"C3,Negative,-1,GBP,,,\n"
        b"D4,Bad currency,1.00,pounds,,,\n"
    )
    response = upload(admin_client, PRODUCT_IMPORT, "products.csv", content)
    assert response.status_code == 200
    result = response.context["result"]
    assert [(row.number, row.error_dict) for row in result.invalid_rows] == [
        (2, {"price": ["'abc' is not a price; write it like 2.50."]}),
        (3, {"price": ["Ensure this value is greater than or equal to 0."]}),
        (
            4,
            {
                "currency": [
                    "Use a three-letter ISO 4217 code in capitals, e.g. GBP.",
                    "Ensure this value has at most 3 characters (it has 6).",
                ]
            },
        ),
    ]
    page = response.content.decode()
    assert "&#x27;abc&#x27; is not a price; write it like 2.50." in page
    assert "Ensure this value is greater than or equal to 0." in page
    assert "confirm_form" not in response.context or response.context["confirm_form"] is None
    assert Product.objects.count() == 0
    assert Category.objects.count() == 0  # the categories the preview created were rolled back


def test_clean_file_previews_then_imports_on_confirmation(admin_client: Client) -> None:
    ProductFactory.create(sku="A1", name="Old name", price=Decimal("1.00"))
    content = (
        b"sku,name,price,currency,category,tags,stock,attributes\n"
        b'A1,Mug,2.50,GBP,Kitchen > Mugs,"gift, blue",3,"{""colour"": ""blue""}"\n'
        b"B2,Plate,4.00,GBP,Kitchen > Plates,,0,\n"
    )
    preview = upload(admin_client, PRODUCT_IMPORT, "products.csv", content)
    assert preview.status_code == 200
    assert [row.import_type for row in preview.context["result"].rows] == ["update", "new"]
    assert Product.objects.get(sku="A1").name == "Old name"  # nothing written before confirmation
    assert not Product.objects.filter(sku="B2").exists()

    confirm = admin_client.post(
        "/admin/personalization/product/process_import/", preview.context["confirm_form"].initial
    )
    assert confirm.status_code == 302
    mug = Product.objects.select_related("category").get(sku="A1")
    assert (mug.name, mug.price, mug.tags, mug.attributes, mug.stock, mug.in_stock) == (
        "Mug",
        Decimal("2.50"),
        ["gift", "blue"],
        {"colour": "blue"},
        3,
        True,
    )
    assert mug.category is not None and mug.category.path == "Kitchen > Mugs"
    plate = Product.objects.get(sku="B2")
    assert (plate.stock, plate.in_stock) == (0, False)


def test_import_reads_xlsx_and_json(admin_client: Client) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["sku", "name", "price", "currency"])
    sheet.append(["X1", "Lantern", 12.5, "GBP"])
    buffer = BytesIO()
    workbook.save(buffer)
    preview = upload(admin_client, PRODUCT_IMPORT, "products.xlsx", buffer.getvalue(), XLSX)
    assert [row.import_type for row in preview.context["result"].rows] == ["new"]

    rows = [{"sku": "J1", "name": "Clock", "price": "20.00", "currency": "GBP"}]
    preview = upload(admin_client, PRODUCT_IMPORT, "products.json", json.dumps(rows).encode(), JSON)
    assert [row.import_type for row in preview.context["result"].rows] == ["new"]


def _export(client: Client, url: str, file_format: str) -> bytes:
    form = client.get(url).context["form"]
    fields = {
        name: "on"
        for name in form.fields
        if name.endswith(
            tuple(
                f"_{f}"
                for f in [
                    "sku",
                    "name",
                    "price",
                    "category",
                    "path",
                    "tags",
                    "currency",
                    "stock",
                    "in_stock",
                    "is_active",
                    "brand",
                    "attributes",
                    "description",
                    "url",
                    "image_url",
                    "depth",
                    "slug",
                ]
            )
        )
    }
    response = client.post(url, {"format": file_format, "resource": "0", **fields})
    assert response.status_code == 200
    return response.content


def test_export_in_every_format(admin_client: Client) -> None:
    ProductFactory.create(sku="A1", name="Mug", price=Decimal("2.50"), tags=["gift"])
    csv_text = _export(admin_client, "/admin/personalization/product/export/", CSV).decode()
    assert csv_text.splitlines()[0].startswith("sku,name,description,url,image_url,price,currency,category")
    assert "A1,Mug,,,,2.50,GBP," in csv_text
    exported = json.loads(_export(admin_client, "/admin/personalization/product/export/", JSON))
    assert exported[0]["sku"] == "A1" and exported[0]["tags"] == "gift"
    workbook = openpyxl.load_workbook(BytesIO(_export(admin_client, "/admin/personalization/product/export/", XLSX)))
    assert workbook.active is not None
    assert [cell.value for cell in workbook.active[2]][:2] == ["A1", "Mug"]


def test_category_import_creates_the_tree(admin_client: Client) -> None:
    content = b"path\nHome > Lighting > Lamps\nHome >  Textiles\nGarden\n"
    preview = upload(admin_client, "/admin/personalization/category/import/", "categories.csv", content)
    assert not preview.context["result"].has_errors()
    admin_client.post("/admin/personalization/category/process_import/", preview.context["confirm_form"].initial)
    assert list(Category.objects.order_by("path").values_list("path", "depth", "slug")) == [
        ("Garden", 0, "garden"),
        ("Home", 0, "home"),
        ("Home > Lighting", 1, "home/lighting"),
        ("Home > Lighting > Lamps", 2, "home/lighting/lamps"),
        ("Home > Textiles", 1, "home/textiles"),
    ]


def test_category_import_refuses_an_empty_level(admin_client: Client) -> None:
    preview = upload(admin_client, "/admin/personalization/category/import/", "c.csv", b"path\nHome >  > Lamps\n")
    result = preview.context["result"]
    assert result.has_errors()
    assert "has an empty level" in str(result.row_errors()[0][1][0].error)
    assert Category.objects.count() == 0
