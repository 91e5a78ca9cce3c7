"""The admin's login is throttled (django-axes): failures counted per username and client address
together, a lockout that holds against the right password, and that a staff member lifts."""

from io import StringIO
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

LOGIN = "/admin/login/?next=/admin/"
PASSWORD = "a-long-staff-password-0451"
ATTACKER = "203.0.113.77"
LOCKOUT = "Too many failed logins to this account from your address"


@pytest.fixture(autouse=True)
def _quick_password_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def staff() -> User:
    return User.objects.create_user("alice", password=PASSWORD, is_staff=True, is_superuser=True)


def log_in(client: Client, username: str, password: str, **meta: Any) -> tuple[int, str]:
    response = client.post(LOGIN, {"username": username, "password": password}, **meta)
    return response.status_code, response.content.decode()


def logged_in_as(client: Client) -> str | None:
    user_id = client.session.get("_auth_user_id")
    return User.objects.get(pk=user_id).username if user_id else None


def lock_out(client: Client, username: str, **meta: Any) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, username, "wrong password", **meta)


def test_failures_lock_the_account_even_against_the_right_password(staff: User) -> None:
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        status, page = log_in(client, "alice", "wrong password", REMOTE_ADDR=ATTACKER)
        assert status == 200
        assert "Please enter the correct username and password" in page

    status, page = log_in(client, "alice", "wrong password", REMOTE_ADDR=ATTACKER)
    assert status == 429
    status, page = log_in(client, "alice", PASSWORD, REMOTE_ADDR=ATTACKER)

    # The admin's own login page, saying why and for how long, not an error page.
    assert status == 429
    assert LOCKOUT in page
    assert "locked for 30 minutes from the last attempt" in page
    assert "Personalization platform" in page
    assert logged_in_as(client) is None
    # The try with the right password counted too (and started the cool-off again).
    assert list(AccessAttempt.objects.values_list("username", "ip_address", "failures_since_start")) == [
        ("alice", "203.0.113.0", settings.AXES_FAILURE_LIMIT + 1)
    ]


def test_a_staff_member_lifts_the_lockout_in_the_admin(staff: User) -> None:
    lock_out(Client(), "alice", REMOTE_ADDR=ATTACKER)
    colleague = Client()
    colleague.force_login(User.objects.create_user("bob", is_staff=True, is_superuser=True))
    attempt = AccessAttempt.objects.get(username="alice")

    listed = colleague.get("/admin/axes/accessattempt/?locked_out=yes").content.decode()
    assert f"/admin/axes/accessattempt/{attempt.pk}/change/" in listed
    response = colleague.post(
        "/admin/axes/accessattempt/", {"action": "delete_selected", "_selected_action": [attempt.pk], "post": "yes"}
    )

    assert response.status_code == 302
    assert AccessAttempt.objects.count() == 0
    client = Client()
    assert log_in(client, "alice", PASSWORD, REMOTE_ADDR=ATTACKER)[0] == 302
    assert logged_in_as(client) == "alice"


def test_the_reset_command_lifts_the_lockout(staff: User) -> None:
    lock_out(Client(), "alice", REMOTE_ADDR=ATTACKER)

    call_command("axes_reset_username", "alice", stdout=StringIO())

    client = Client()
    assert AccessAttempt.objects.count() == 0
    assert log_in(client, "alice", PASSWORD, REMOTE_ADDR=ATTACKER)[0] == 302
    assert logged_in_as(client) == "alice"


def test_a_lockout_holds_back_no_one_else(staff: User) -> None:
    User.objects.create_user("bob", password=PASSWORD, is_staff=True)
    lock_out(Client(), "alice", REMOTE_ADDR=ATTACKER)

    bob, alice = Client(), Client()
    # Another account from another address, and the same account from its owner's address.
    assert log_in(bob, "bob", PASSWORD, REMOTE_ADDR="198.51.100.9")[0] == 302
    assert log_in(alice, "alice", PASSWORD, REMOTE_ADDR="192.0.2.10")[0] == 302
    assert (logged_in_as(bob), logged_in_as(alice)) == ("bob", "alice")
    assert AccessAttempt.objects.get().ip_address == "203.0.113.0"


def test_behind_proxies_the_client_address_is_counted(staff: User, settings: Any) -> None:
    settings.PZ_TRUSTED_PROXIES = 1
    proxy = "10.0.0.2"
    # What the client writes on the left of X-Forwarded-For is not believed; the proxy's entry is.
    for forged in ["198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4", "198.51.100.5"]:
        log_in(Client(), "alice", "wrong password", REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=f"{forged}, {ATTACKER}")

    assert log_in(Client(), "alice", PASSWORD, REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=ATTACKER)[0] == 429
    owner = Client()
    assert log_in(owner, "alice", PASSWORD, REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="192.0.2.10")[0] == 302
    assert logged_in_as(owner) == "alice"
    assert list(AccessAttempt.objects.values_list("ip_address", "failures_since_start")) == [
        ("203.0.113.0", settings.AXES_FAILURE_LIMIT + 1)
    ]
