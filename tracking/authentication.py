"""DRF authentication with a source's keys.

- The **secret key** (``Authorization: Bearer pzs_…``) is for the shop's servers: it may read and
  change what the platform holds.
- The **write key** (``pzw_…``) is public, since a browser sees it: it may only send (events,
  consent choices). It comes as Segment sends it: HTTP Basic with the key as user name, or
  ``writeKey`` in the JSON body.
"""

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.http import HttpRequest, HttpResponseBase
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from tracking.models import Source
from tracking.selectors import source_for_secret_key, source_for_write_key
from tracking.source_keys import (
    SECRET_KEY_PREFIX,
    WRITE_KEY_PREFIX,
    origin_allowed,
    secret_key_digest,
    user_token_for,
    user_token_matches,
)


@dataclass(frozen=True)
class SourceCredential:
    """``request.auth`` after authentication: which source, and with which of its keys."""

    source: Source
    secret: bool


def _bearer_key(request: Request) -> str | None:
    header = authentication.get_authorization_header(request).decode("latin-1")
    if not header:
        return None
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    return key.strip()


def _authenticate_secret(key: str) -> tuple[None, SourceCredential]:
    if key.startswith(WRITE_KEY_PREFIX):
        raise exceptions.AuthenticationFailed(
            "This is a source's public write key, which can only send events. "
            "Server-side APIs need the source's secret key."
        )
    source = source_for_secret_key(digest=secret_key_digest(key))
    if source is None:
        raise exceptions.AuthenticationFailed("Unknown or revoked secret key.")
    return (None, SourceCredential(source, secret=True))


class SecretKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[None, SourceCredential] | None:
        if not authentication.get_authorization_header(request):
            return None
        key = _bearer_key(request)
        if key is None:
            raise exceptions.AuthenticationFailed("Use the header 'Authorization: Bearer <secret key>'.")
        return _authenticate_secret(key)

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'


class WriteKeyAuthentication(authentication.BaseAuthentication):
    """The write key from HTTP Basic (user name) or ``writeKey`` in the body; a secret key in a
    Bearer header is accepted as well, since a server may send what a browser sends."""

    def authenticate(self, request: Request) -> tuple[None, SourceCredential] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip().startswith(SECRET_KEY_PREFIX):
            return _authenticate_secret(value.strip())
        key = None
        if scheme.lower() == "basic":
            try:
                key = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[0]
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise exceptions.AuthenticationFailed("The Basic credentials are not valid base64.") from exc
        elif isinstance(request.data, dict) and isinstance(request.data.get("writeKey"), str):
            key = request.data["writeKey"]
        if not key:
            return None
        source = source_for_write_key(write_key=key)
        if source is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked write key.")
        return (None, SourceCredential(source, secret=False))

    def authenticate_header(self, request: Request) -> str:
        return 'Basic realm="api"'


class WriteKeyQueryAuthentication(WriteKeyAuthentication):
    """The write key as the ``writeKey`` query parameter too, for a browser's plain GET (no
    Authorization header, so no CORS preflight before every widget's request)."""

    def authenticate(self, request: Request) -> tuple[None, SourceCredential] | None:
        found = super().authenticate(request)
        key = request.query_params.get("writeKey")
        if found is not None or not key:
            return found
        source = source_for_write_key(write_key=key)
        if source is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked write key.")
        return (None, SourceCredential(source, secret=False))


def user_token(source: Source, user_id: str) -> str:
    """What proves a browser may ask in a user's name (see ``tracking.user_tokens``)."""
    return user_token_for(source.secret_key_digest, user_id)


def user_token_valid(source: Source, user_id: str, token: str) -> bool:
    return user_token_matches(source.secret_key_digest, user_id, token)


class UserNotProven(exceptions.APIException):
    status_code = 403
    default_code = "user_not_proven"
    default_detail = (
        "With the public write key, acting for a userId needs its userToken (computed by the shop's "
        "server); or send this from the server with the secret key."
    )


def user_proof_require(credential: SourceCredential, user_id: str, token: str) -> None:
    """Refuse a browser's request in a user's name without the user's token: the write key is
    public, and customer ids are guessable."""
    if user_id and not credential.secret and not user_token_valid(credential.source, user_id, token):
        raise UserNotProven()


class HasSourceSecretKey(permissions.BasePermission):
    message = "Authenticate with a source's secret key: 'Authorization: Bearer <secret key>'."

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, SourceCredential) and request.auth.secret


class FromAllowedOrigin(permissions.BasePermission):
    """A browser may use the write key only from the source's allowed origins (or the platform's own
    pages); refused, nothing is done, and the answer says so (see ``cors_any_origin``)."""

    code = "origin_not_allowed"
    message = "This origin is not among the source's allowed origins; nothing was recorded."

    def has_permission(self, request: Request, view: Any) -> bool:
        credential = request.auth
        if not isinstance(credential, SourceCredential) or credential.secret:
            return True
        return request_origin_allowed(request, credential.source.allowed_origins or [])


class HasSourceKey(permissions.BasePermission):
    message = "Authenticate with a source's write key (HTTP Basic user name, or writeKey in the body)."

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, SourceCredential)


AnyResponse = TypeVar("AnyResponse", bound=HttpResponseBase)


def request_origin_allowed(request: HttpRequest | Request, allowed_origins: Iterable[str]) -> bool:
    """Whether the request may use a source's write key from its browser origin (``origin_allowed``);
    the platform's own origin, which checks the Host header, is worked out only when there is one."""
    origin = request.META.get("HTTP_ORIGIN")
    return not origin or origin_allowed(origin, allowed_origins, f"{request.scheme}://{request.get_host()}")


def cors_any_origin(request: HttpRequest | Request, response: AnyResponse) -> AnyResponse:
    """Let the browser's script read the answer, whatever its origin: ``FromAllowedOrigin`` gives
    a 2xx only to an allowed one, and a refusal must reach the script as such (a 403 it does not
    retry), not as a network failure it would."""
    origin = request.META.get("HTTP_ORIGIN")
    if origin:
        response["Access-Control-Allow-Origin"] = origin
        response["Vary"] = "Origin"
    return response


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


class WriteKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "tracking.authentication.WriteKeyAuthentication"
    name = "writeKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "basic",
            "description": "A source's public write key (pzw_…) as the user name, empty password; "
            "or `writeKey` in the JSON body.",
        }


class WriteKeyQueryAuthenticationScheme(OpenApiAuthenticationExtension):
    """The write key as the writeKey parameter; the same view also takes HTTP Basic and the secret
    key, which the other schemes describe."""

    target_class = "tracking.authentication.WriteKeyQueryAuthentication"
    match_subclasses = True
    name = "writeKeyParameter"

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[Any]]]:
        return [{"writeKeyParameter": []}, {"writeKey": []}, {"secretKey": []}]

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "apiKey", "in": "query", "name": "writeKey", "description": "The source's public write key."}
