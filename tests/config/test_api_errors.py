import pytest
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from config.api_errors import flatten_field_errors


def test_flatten_names_nested_fields_with_dots() -> None:
    errors = {"products": [{}, {"price": ["too low"], "tags": [[], ["empty"]]}], "skus": ["required"]}
    assert flatten_field_errors(errors) == {
        "products.1.price": ["too low"],
        "products.1.tags.1": ["empty"],
        "skus": ["required"],
    }


def test_flatten_keeps_errors_without_a_field() -> None:
    assert flatten_field_errors(["bad body"]) == {"non_field_errors": ["bad body"]}
    assert flatten_field_errors("bad body") == {"non_field_errors": ["bad body"]}


@given(st.recursive(st.text(max_size=5), lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c)))
def test_flatten_always_gives_lists_of_strings(errors: object) -> None:
    flat = flatten_field_errors(errors)
    assert all(isinstance(k, str) and all(isinstance(m, str) for m in v) for k, v in flat.items())


@pytest.mark.embedded
@pytest.mark.django_db
def test_unknown_api_path_is_a_json_404(client: Client) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "detail": "No such endpoint or object.", "fields": {}}


@pytest.mark.embedded
@pytest.mark.django_db
def test_unknown_page_outside_the_api_is_html(client: Client) -> None:
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
