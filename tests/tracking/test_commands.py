import re
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from personalization.models import ModelVersion, Product
from tests.conftest import write_online_retail
from tracking.models import Order, Source

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def test_create_source_prints_keys_that_work() -> None:
    out = StringIO()
    call_command("create_source", "Web shop", stdout=out)
    secret = re.search(r"Secret key: (pzs_\S+)", out.getvalue())
    write = re.search(r"Write key:  (pzw_\S+)", out.getvalue())
    assert secret and write
    assert Source.objects.get(name="Web shop").write_key == write.group(1)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret.group(1)}")
    assert client.get("/api/v1/catalog/products").status_code == 200
    with pytest.raises(CommandError, match="exists already"):
        call_command("create_source", "Web shop", stdout=StringIO())


def test_demo_setup_loads_data_once_and_creates_logins(tmp_path: Path, settings) -> None:
    datasets = tmp_path / "datasets"
    (datasets / "online_retail").mkdir(parents=True)
    write_online_retail(
        datasets / "online_retail" / "online_retail.csv.gz",
        [
            "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2011-10-01 08:26:00,2.55,17850,United Kingdom",
            "536360,71053,WHITE METAL LANTERN,6,2011-01-01 08:26:00,3.39,17850,United Kingdom",
        ],
    )
    settings.PZ_DATASETS_DIR, settings.VAR_DIR = datasets, tmp_path / "var"
    out = StringIO()
    call_command("demo_setup", "--since", "2011-09-01", "--no-progress", stdout=out)
    assert list(Order.objects.values_list("order_id", flat=True)) == ["536365"]  # only the demo slice
    password = re.search(r"user admin, password (\S+)", out.getvalue())
    assert password is not None
    assert get_user_model().objects.get(username="admin").check_password(password.group(1))
    assert Source.objects.filter(name="Demo shop").exists()
    credentials = tmp_path / "var" / "demo-credentials.txt"
    assert credentials.stat().st_mode & 0o077 == 0

    again = StringIO()
    call_command("demo_setup", "--no-progress", stdout=again)
    assert f"password {password.group(1)}" in again.getvalue()
    assert Product.objects.count() == 1 and Source.objects.count() == 1
    # the recommenders were trained once, on the demo data, and serve
    assert list(ModelVersion.objects.values_list("status", flat=True)) == ["active"]


def test_demo_setup_says_where_the_data_should_be(tmp_path: Path, settings) -> None:
    settings.PZ_DATASETS_DIR, settings.VAR_DIR = tmp_path, tmp_path / "var"
    with pytest.raises(CommandError, match="The demo data is missing"):
        call_command("demo_setup", stdout=StringIO())
