"""What django-axes asks of the project for the admin's login throttling: the client's address,
and the page a locked-out login gets."""

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from config.client_address import client_ip, truncate_ip


def login_client_ip(request: HttpRequest) -> str:
    """The address failures are counted by: the client's as the rest of the app finds it (behind
    ``PZ_TRUSTED_PROXIES``), truncated as every stored address is."""
    return truncate_ip(client_ip(request.META, settings.PZ_TRUSTED_PROXIES))


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict[str, Any] | None = None
) -> HttpResponse:
    """The admin's login page with the lockout message in place of the form."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    message = (
        f"Too many failed logins to this account from your address: logging in is locked for {minutes} minutes "
        "from the last attempt. Another staff member can lift the lockout now (Axes › Access attempts)."
    )
    context = {**admin.site.each_context(request), "title": "Log in", "message": message}
    return TemplateResponse(request, "admin/login_locked.html", context, status=429).render()
