"""Every kind of page answers with the Content-Security-Policy (django-csp), and the demo shop's
scripts carry the request's nonce; the JSON APIs carry none."""

import json
import re

import pytest
from django.conf import settings
from django.http import HttpResponseBase
from django.test import Client

from personalization.services import category_ensure_paths
from tests.conftest import run_django
from tests.factories import ProductFactory
from tracking.services import source_create

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

HEADER = "Content-Security-Policy"


def policy(response: HttpResponseBase) -> dict[str, str]:
    directives = (part.strip().partition(" ") for part in response[HEADER].split(";"))
    return {name: value for name, _, value in directives}


def expected(nonce: str | None = None) -> dict[str, str]:
    with_nonce = f"'self' 'nonce-{nonce}'" if nonce else "'self'"
    return {
        "default-src": "'self'",
        "script-src": with_nonce,
        "style-src": with_nonce,
        "style-src-elem": with_nonce,
        "style-src-attr": "'unsafe-inline'",
        "img-src": "'self' data: https:",
        "connect-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'self'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }


def script_tags(page: str) -> list[str]:
    return re.findall(r"<script\b[^>]*>", page)


@pytest.mark.parametrize(
    "url", ["/shop/", "/shop/c/home-decor/", "/shop/p/85123A/", "/shop/cart/", "/shop/search/?q=heart"]
)
def test_shop_pages_run_only_their_own_scripts(client: Client, url: str) -> None:
    source_create(name=settings.PZ_DEMO_SOURCE)
    category = category_ensure_paths(paths=["Home Decor > Candles & Holders"])["Home Decor > Candles & Holders"]
    ProductFactory.create(sku="85123A", name="WHITE HANGING HEART T-LIGHT HOLDER", category=category)

    response = client.get(url)

    assert response.status_code == 200
    page = response.content.decode()
    nonce = policy(response)["script-src"].removeprefix("'self' 'nonce-").removesuffix("'")
    assert policy(response) == expected(nonce)
    # The tracker, the banner and both inline snippets: each with this response's nonce.
    tags = script_tags(page)
    assert len(tags) == 4
    assert all(f'nonce="{nonce}"' in tag for tag in tags)


def test_two_responses_have_two_nonces(client: Client) -> None:
    source_create(name=settings.PZ_DEMO_SOURCE)
    first, second = client.get("/shop/"), client.get("/shop/")
    assert policy(first)["script-src"] != policy(second)["script-src"]


def test_the_preference_center_runs_no_script(client: Client) -> None:
    response = client.get("/shop/privacy/", follow=True)

    assert response.redirect_chain[0][0].startswith("/privacy/p/")
    assert response.status_code == 200
    assert policy(response) == expected()
    assert script_tags(response.content.decode()) == []


@pytest.mark.parametrize("url", ["/admin/", "/admin/personalization/product/", "/admin/personalization/product/add/"])
def test_admin_pages(admin_client: Client, url: str) -> None:
    ProductFactory.create(sku="85123A")
    response = admin_client.get(url)
    assert response.status_code == 200
    assert policy(response) == expected()
    assert all("src=" in tag for tag in script_tags(response.content.decode()))


def test_admin_login_page(client: Client) -> None:
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert policy(response) == expected()


def test_api_docs_load_their_start_up_script_from_a_url(client: Client) -> None:
    response = client.get("/api/docs/")

    assert response.status_code == 200
    page = response.content.decode()
    nonce = re.findall(r'<style nonce="([^"]+)">', page)
    assert len(nonce) == 1
    assert policy(response) == expected(nonce[0])
    tags = script_tags(page)
    assert len(tags) == 3
    assert all("src=" in tag for tag in tags)
    start_up = client.get("/api/docs/?script=")
    assert start_up.status_code == 200
    assert start_up["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in start_up.content.decode()


def test_json_apis_carry_no_policy(client: Client) -> None:
    assert HEADER not in client.get("/api/v1/consent/config")
    assert HEADER not in client.post("/v1/batch", data="{}", content_type="application/json")


def test_report_only_and_a_report_address_come_from_the_environment() -> None:
    result = run_django(
        "import json, django; django.setup(); from django.test import Client; r = Client().get('/admin/login/'); "
        "print(json.dumps({k: v for k, v in r.items() if 'Security-Policy' in k}))",
        PZ_CSP_REPORT_ONLY="1",
        PZ_CSP_REPORT_URI="https://reports.example.com/csp",
    )

    assert result.returncode == 0, result.stderr
    headers = json.loads(result.stdout.strip().splitlines()[-1])
    assert list(headers) == [f"{HEADER}-Report-Only"]
    assert headers[f"{HEADER}-Report-Only"].endswith("; report-uri https://reports.example.com/csp")
    assert "script-src 'self';" in headers[f"{HEADER}-Report-Only"]
