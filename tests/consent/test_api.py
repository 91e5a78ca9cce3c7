import base64
import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from consent.links import subject_from_preference_token
from consent.models import ConsentRecord, PreferenceLink, SubjectLink
from consent.subjects import Subject
from tracking.authentication import user_token
from tracking.services import SourceKeys

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

CHOICES = "/api/v1/consent/choices"


def basic(write_key: str) -> str:
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()


def records() -> list[tuple[object, ...]]:
    return list(
        ConsentRecord.objects.order_by("purpose_id").values_list(
            "anonymous_id", "purpose_id", "granted", "source", "gpc"
        )
    )


def test_config_is_public_and_cacheable(api_client: APIClient) -> None:
    response = api_client.get("/api/v1/consent/config")
    assert response.status_code == 200
    body = response.json()
    assert body["policy"] == {"version": 1, "title": "Privacy policy", "url": "http://testserver/privacy/policy/"}
    assert [(p["key"], p["required"]) for p in body["purposes"]] == [
        ("necessary", True),
        ("analytics", False),
        ("personalization", False),
        ("marketing", False),
    ]
    assert body["gpcWithdraws"] == ["marketing"]
    assert response["Cache-Control"] == "public, max-age=60"
    assert response["Access-Control-Allow-Origin"] == "*"


def test_browser_records_choices_with_the_write_key_in_the_body_as_text_plain(
    api_client: APIClient, source_keys: SourceKeys
) -> None:
    body = {
        "writeKey": source_keys.write_key,
        "anonymousId": "anon-1",
        "choices": {"analytics": True, "marketing": False},
        "policyVersion": 1,
    }
    response = api_client.post(
        CHOICES, json.dumps(body), content_type="text/plain", HTTP_USER_AGENT="Firefox", REMOTE_ADDR="198.51.100.23"
    )
    assert response.status_code == 200
    assert response.json() == {
        "recorded": [{"purpose": "analytics", "granted": True}, {"purpose": "marketing", "granted": False}],
        "policyVersion": 1,
    }
    assert records() == [
        ("anon-1", "analytics", True, "banner", False),
        ("anon-1", "marketing", False, "banner", False),
    ]
    assert set(ConsentRecord.objects.values_list("ip_address", "user_agent")) == {("198.51.100.0", "Firefox")}


def test_write_key_by_http_basic_and_an_origin_the_source_does_not_list_is_refused(
    api_client: APIClient, source_keys: SourceKeys
) -> None:
    source_keys.source.allowed_origins = ["https://shop.example.com"]
    source_keys.source.save()
    body = {"anonymousId": "anon-2", "choices": {"personalization": True}}
    response = api_client.post(
        CHOICES,
        body,
        format="json",
        HTTP_AUTHORIZATION=basic(source_keys.write_key),
        HTTP_ORIGIN="https://shop.example.com",
    )
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "https://shop.example.com"
    other = api_client.post(
        CHOICES,
        body,
        format="json",
        HTTP_AUTHORIZATION=basic(source_keys.write_key),
        HTTP_ORIGIN="https://evil.example",
    )
    assert other.status_code == 403
    assert other.json() == {
        "code": "origin_not_allowed",
        "detail": "This origin is not among the source's allowed origins; nothing was recorded.",
        "fields": {},
    }
    assert other["Access-Control-Allow-Origin"] == "https://evil.example"  # the banner reads the refusal
    assert records() == [("anon-2", "personalization", True, "banner", False)]


def test_sec_gpc_header_is_honoured_on_a_choices_request(api_client: APIClient, source_keys: SourceKeys) -> None:
    body = {"writeKey": source_keys.write_key, "anonymousId": "anon-3", "choices": {"analytics": True}}
    response = api_client.post(CHOICES, body, format="json", HTTP_SEC_GPC="1")
    assert response.json()["recorded"] == [
        {"purpose": "analytics", "granted": True},
        {"purpose": "marketing", "granted": False},
    ]
    assert records() == [("anon-3", "analytics", True, "banner", True), ("anon-3", "marketing", False, "gpc", True)]


def test_gpc_endpoint_withdraws_once(api_client: APIClient, source_keys: SourceKeys) -> None:
    body = {"writeKey": source_keys.write_key, "anonymousId": "anon-4"}
    assert api_client.post("/api/v1/consent/gpc", body, format="json").json() == {"withdrawn": ["marketing"]}
    assert api_client.post("/api/v1/consent/gpc", body, format="json").json() == {"withdrawn": []}
    assert records() == [("anon-4", "marketing", False, "gpc", True)]


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"anonymousId": "a", "choices": {"profiling": True}}, {"choices.profiling": ["is not a consent purpose"]}),
        (
            {"anonymousId": "a", "choices": {"necessary": False}},
            {"choices.necessary": ["is required for the shop to work and cannot be refused"]},
        ),
        ({"choices": {"analytics": True}}, {"body": ["give a userId or an anonymousId"]}),
        (
            {"anonymousId": "a", "choices": {}},
            {"choices": ["Dictionary should have at least 1 item after validation, not 0"]},
        ),
        (
            {"anonymousId": "a", "choices": {"analytics": "maybe"}},
            {"choices.analytics": ["Input should be a valid boolean, unable to interpret input"]},
        ),
        (
            {"anonymousId": "a", "choices": {"analytics": True}, "source": "import"},
            {"source": ["with a write key, use banner or preference_center"]},
        ),
        (
            {"anonymousId": "a", "choices": {"analytics": True}, "policyVersion": 9},
            {"policyVersion": ["there is no published policy version 9"]},
        ),
        ({"anonymousId": "a", "choices": {"analytics": True}, "colour": "red"}, {"colour": ["is not a known field"]}),
    ],
)
def test_bad_bodies_name_the_field_and_store_nothing(
    api_client: APIClient, source_keys: SourceKeys, body: dict[str, object], fields: dict[str, list[str]]
) -> None:
    response = api_client.post(CHOICES, {**body, "writeKey": source_keys.write_key}, format="json")
    assert response.status_code == 400
    assert response.json() == {"code": "invalid", "detail": "The request has invalid fields.", "fields": fields}
    assert ConsentRecord.objects.count() == 0


def test_choices_need_a_known_key(api_client: APIClient, source_keys: SourceKeys) -> None:
    body = {"anonymousId": "a", "choices": {"analytics": True}}
    assert api_client.post(CHOICES, body, format="json").status_code == 401
    assert api_client.post(CHOICES, {**body, "writeKey": "pzw_nope"}, format="json").status_code == 401
    assert ConsentRecord.objects.count() == 0


def test_the_secret_key_may_record_imports(api_client: APIClient, source_keys: SourceKeys) -> None:
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {source_keys.secret_key}")
    body = {"userId": "u-1", "choices": {"marketing": True}, "source": "import"}
    assert api_client.post(CHOICES, body, format="json").status_code == 200
    assert list(ConsentRecord.objects.values_list("user_id", "source")) == [("u-1", "import")]


@pytest.mark.parametrize("token", [None, "", "0" * 64, "token-of-someone-else"])
@pytest.mark.parametrize("path", [CHOICES, "/api/v1/consent/gpc"])
def test_a_browser_cannot_choose_in_a_users_name_without_the_users_token(
    api_client: APIClient, source_keys: SourceKeys, path: str, token: str | None
) -> None:
    body: dict[str, object] = {"writeKey": source_keys.write_key, "anonymousId": "attacker", "userId": "victim"}
    if path == CHOICES:
        body["choices"] = {"analytics": True, "marketing": True}
    if token is not None:
        body["userToken"] = (
            user_token(source_keys.source, "someone-else") if token == "token-of-someone-else" else token
        )
    response = api_client.post(path, body, format="json", HTTP_SEC_GPC="1")
    assert response.status_code == 403
    assert response.json() == {
        "code": "user_not_proven",
        "detail": "With the public write key, acting for a userId needs its userToken (computed by the shop's "
        "server); or send this from the server with the secret key.",
        "fields": {},
    }
    assert ConsentRecord.objects.count() == 0
    assert SubjectLink.objects.count() == 0


def test_a_browser_with_the_users_token_chooses_in_their_name_and_links_its_id(
    api_client: APIClient, source_keys: SourceKeys
) -> None:
    body = {
        "writeKey": source_keys.write_key,
        "anonymousId": "browser-7",
        "userId": "u-7",
        "userToken": user_token(source_keys.source, "u-7"),
        "choices": {"analytics": True},
    }
    assert api_client.post(CHOICES, body, format="json").status_code == 200
    recorded = [(r.user_id, r.anonymous_id, r.purpose.key, r.granted) for r in ConsentRecord.objects.all()]
    assert recorded == [("u-7", "browser-7", "analytics", True)]
    assert list(SubjectLink.objects.values_list("anonymous_id", "user_id")) == [("browser-7", "u-7")]


def test_state_needs_the_secret_key(api_client: APIClient, source_keys: SourceKeys) -> None:
    proof = user_token(source_keys.source, "u-2")
    body = {"writeKey": source_keys.write_key, "userId": "u-2", "userToken": proof, "choices": {"analytics": True}}
    assert api_client.post(CHOICES, body, format="json").status_code == 200
    refused = api_client.get(
        "/api/v1/consent/subjects/state", {"userId": "u-2"}, HTTP_AUTHORIZATION=basic(source_keys.write_key)
    )
    assert refused.status_code == 401
    assert refused.json()["detail"] == "Use the header 'Authorization: Bearer <secret key>'."
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {source_keys.secret_key}")
    state = api_client.get("/api/v1/consent/subjects/state", {"userId": "u-2"}).json()
    assert state["policy_version"] == 1
    assert state["purposes"]["analytics"]["allowed"] is True
    assert state["purposes"]["analytics"]["choice"] == "granted"
    assert state["purposes"]["marketing"] == {
        "allowed": False,
        "choice": None,
        "chosen_at": None,
        "policy_version": None,
        "source": None,
    }
    assert api_client.get("/api/v1/consent/subjects/state").status_code == 400


def test_link_and_preference_link(api_client: APIClient, source_keys: SourceKeys) -> None:
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {source_keys.secret_key}")
    link = api_client.post("/api/v1/consent/subjects/links", {"anonymousId": "a-5", "userId": "u-5"}, format="json")
    assert link.json() == {"linked": True}
    assert SubjectLink.objects.filter(anonymous_id="a-5", user_id="u-5").count() == 1
    response = api_client.post("/api/v1/consent/preference-links", {"userId": "u-5", "expiresIn": 3600}, format="json")
    body = response.json()
    assert body["url"].startswith("http://testserver/privacy/p/")
    token = body["url"].removeprefix("http://testserver/privacy/p/").rstrip("/")
    assert subject_from_preference_token(token) == Subject(user_id="u-5")
    assert PreferenceLink.objects.get().user_id == "u-5"
    api_client.credentials(HTTP_AUTHORIZATION=basic(source_keys.write_key))
    assert api_client.post("/api/v1/consent/preference-links", {"userId": "u-5"}, format="json").status_code == 401


# --- bodies that PostgreSQL cannot store, or Python cannot decode -----------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"anonymousId": "anon\\u0000", "choices": {"analytics": true}}', "anonymousId"),
        (b'{"anonymousId": "anon-1", "choices": {"analytics\\u0000": true}}', "choices.analytics\x00"),
        (b'{"anonymousId": "anon-1", "source": "\\u0000", "choices": {"analytics": true}}', "source"),
        (b'{"anonymousId": "anon-1", "choices": ' + b"[" * 5000 + b"]" * 5000 + b"}", "body"),
        (b'{"anonymousId": "anon-1", "choices": {"x": ' + b"[" * 40 + b"]" * 40 + b"}}", "body"),
    ],
)
def test_a_body_the_database_cannot_store_is_a_400_naming_the_field(
    api_client: APIClient, source_keys: SourceKeys, body: bytes, field: str
) -> None:
    response = api_client.post(
        CHOICES, body, content_type="application/json", HTTP_AUTHORIZATION=basic(source_keys.write_key)
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert list(response.json()["fields"]) == [field]
    assert records() == []


def test_invalid_utf8_is_a_parse_error(api_client: APIClient, source_keys: SourceKeys) -> None:
    response = api_client.post(
        CHOICES,
        b'{"anonymousId": "\xff\xfe", "choices": {"analytics": true}}',
        content_type="application/json",
        HTTP_AUTHORIZATION=basic(source_keys.write_key),
    )
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"
    assert records() == []


def test_a_nul_in_a_server_call_is_refused(api_client: APIClient, source_keys: SourceKeys) -> None:
    secret: dict[str, Any] = {"HTTP_AUTHORIZATION": f"Bearer {source_keys.secret_key}"}
    link = api_client.post(
        "/api/v1/consent/subjects/links",
        b'{"anonymousId": "a\\u0000", "userId": "u-1"}',
        content_type="application/json",
        **secret,
    )
    state = api_client.get("/api/v1/consent/subjects/state?userId=u%00", **secret)
    assert (link.status_code, link.json()["fields"]) == (400, {"anonymousId": ["contains a NUL character (\\u0000)"]})
    assert state.status_code == 400
    assert SubjectLink.objects.count() == 0
