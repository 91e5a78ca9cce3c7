"""DRF authentication for server-side calls: ``Authorization: Bearer <secret key>``.

The public write key a browser sees is refused here with a message saying so: it can only send
events (see the Tracking issue), never read or change the catalog.
"""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from tracking.models import Source
from tracking.selectors import source_for_secret_key
from tracking.services import WRITE_KEY_PREFIX, secret_key_digest


class SecretKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, Source] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, key = header.partition(" ")
        key = key.strip()
        if scheme.lower() != self.keyword.lower() or not key:
            raise exceptions.AuthenticationFailed("Use the header 'Authorization: Bearer <secret key>'.")
        if key.startswith(WRITE_KEY_PREFIX):
            raise exceptions.AuthenticationFailed(
                "This is a source's public write key, which can only send events. "
                "Server-side APIs need the source's secret key."
            )
        source = source_for_secret_key(digest=secret_key_digest(key))
        if source is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked secret key.")
        return (None, source)

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'


class HasSourceSecretKey(permissions.BasePermission):
    message = "Authenticate with a source's secret key: 'Authorization: Bearer <secret key>'."

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, Source)


class SecretKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Describes the secret key in the OpenAPI schema (so /api/docs/ offers an "Authorize" box)."""

    target_class = "tracking.authentication.SecretKeyAuthentication"
    name = "secretKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A source's secret key (pzs_…), never the public write key.",
        }
