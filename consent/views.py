"""The consent API.

Browsers (the banner, or a shop's own banner) use the public write key: they can read the public
configuration and record choices. The shop's servers use the secret key for everything else.
"""

from typing import Any, TypeVar

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from pydantic import BaseModel, ValidationError
from rest_framework import exceptions, permissions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api_errors import api_error_schema
from config.input_errors import validation_error_fields
from config.parsers import JSONParser, PlainTextJSONParser
from consent import network, selectors, services
from consent.api_input import ChoicesIn, GpcIn, LinkIn, PreferenceLinkIn, SubjectIn
from consent.exceptions import ConsentError
from consent.links import policy_url
from consent.models import ConsentRecord
from consent.network import gpc_signal
from consent.subjects import Subject
from tracking.authentication import (
    FromAllowedOrigin,
    HasSourceKey,
    HasSourceSecretKey,
    SecretKeyAuthentication,
    SourceCredential,
    WriteKeyAuthentication,
    cors_any_origin,
    user_proof_require,
)

ERRORS = {
    400: OpenApiResponse(api_error_schema(), description="Invalid request; `fields` names each problem."),
    401: OpenApiResponse(api_error_schema(), description="Missing or wrong key."),
}
BROWSER_ERRORS = {
    **ERRORS,
    403: OpenApiResponse(
        api_error_schema(), description="`user_not_proven`: a userId with the write key and without its userToken."
    ),
}
BROWSER_SOURCES = {ConsentRecord.Source.BANNER, ConsentRecord.Source.PREFERENCE_CENTER}


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: Any) -> M:
    """Validate a body with a pydantic model; errors come out as the API's 400 with each field."""
    try:
        return model.model_validate(data if isinstance(data, dict) else {})
    except ValidationError as exc:
        raise exceptions.ValidationError(validation_error_fields(exc, root="body")) from exc


def request_facts(request: Request) -> network.RequestFacts:
    return network.request_facts(request.META, settings.PZ_TRUSTED_PROXIES)


def honour_gpc(request: Request, subject: Subject) -> list[ConsentRecord]:
    """Every request with ``Sec-GPC: 1`` is an opt-out signal for its subject."""
    if not gpc_signal(request.META):
        return []
    return services.consent_apply_gpc(subject=subject, **request_facts(request))


def _credential(request: Request) -> SourceCredential:
    assert isinstance(request.auth, SourceCredential)  # noqa: S101 (guaranteed by the permission class)
    return request.auth


class BrowserView(APIView):
    authentication_classes = [WriteKeyAuthentication]
    permission_classes = [HasSourceKey, FromAllowedOrigin]
    parser_classes = [JSONParser, PlainTextJSONParser]

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        cors_any_origin(request, response)
        return super().finalize_response(request, response, *args, **kwargs)


class ServerView(APIView):
    authentication_classes = [SecretKeyAuthentication]
    permission_classes = [HasSourceSecretKey]


class ConsentConfigView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [permissions.AllowAny]

    @extend_schema(
        summary="Purposes and the current policy (public)",
        description="What a banner shows. No key needed; cacheable for a minute.",
        responses={200: OpenApiResponse(description="Policy version, purposes and GPC behaviour.")},
    )
    def get(self, request: Request) -> Response:
        policy = selectors.current_policy_version()
        body = {
            "policy": None
            if policy is None
            else {"version": policy.version, "title": policy.title, "url": policy_url(request, policy)},
            "purposes": [
                {"key": p.key, "name": p.name, "description": p.description, "required": p.is_required}
                for p in selectors.purposes_for_display()
            ],
            "gpcWithdraws": list(settings.PZ_GPC_WITHDRAWS),
        }
        response = Response(body)
        response["Cache-Control"] = "public, max-age=60"
        response["Access-Control-Allow-Origin"] = "*"
        return response


class ConsentChoicesView(BrowserView):
    @extend_schema(
        summary="Record a person's choices",
        description=(
            "One record per purpose, append-only. With the write key (browsers) the source is `banner` or "
            "`preference_center`; with the secret key also `api` or `import`. A `Sec-GPC: 1` header is "
            "honoured after the choices are recorded (see the README: an explicit grant made while GPC "
            "was on stands). The body may be sent as `text/plain` to avoid a CORS preflight. With the write key, "
            'a `userId` needs its `userToken` (see the README, "Who asks"), else 403 `user_not_proven`.'
        ),
        request=ChoicesIn,
        responses={200: OpenApiResponse(description="The records written."), **BROWSER_ERRORS},
    )
    def post(self, request: Request) -> Response:
        body = parse(ChoicesIn, request.data)
        credential = _credential(request)
        if not credential.secret and body.source not in BROWSER_SOURCES:
            raise exceptions.ValidationError({"source": ["with a write key, use banner or preference_center"]})
        if body.source == ConsentRecord.Source.GPC:
            raise exceptions.ValidationError({"source": ["send GPC signals to /api/v1/consent/gpc"]})
        user_proof_require(credential, body.user_id, body.user_token)
        subject = Subject(user_id=body.user_id, anonymous_id=body.anonymous_id)
        try:
            records = services.consent_record(
                subject=subject,
                choices=body.choices,
                source=body.source,
                policy_version=body.policy_version,
                gpc=body.gpc or gpc_signal(request.META),
                **request_facts(request),
            )
        except ConsentError as exc:
            raise exceptions.ValidationError({exc.field: [exc.message]}) from exc
        gpc_records = honour_gpc(request, subject)
        return Response(
            {
                "recorded": [{"purpose": r.purpose_id, "granted": r.granted} for r in [*records, *gpc_records]],
                "policyVersion": records[0].policy_version.version if records and records[0].policy_version else None,
            }
        )


class ConsentGpcView(BrowserView):
    @extend_schema(
        summary="Record a Global Privacy Control signal",
        description="The banner calls this when `navigator.globalPrivacyControl` is true.",
        request=GpcIn,
        responses={200: OpenApiResponse(description="The purposes withdrawn (none if already so)."), **BROWSER_ERRORS},
    )
    def post(self, request: Request) -> Response:
        body = parse(GpcIn, request.data)
        user_proof_require(_credential(request), body.user_id, body.user_token)
        subject = Subject(user_id=body.user_id, anonymous_id=body.anonymous_id)
        records = services.consent_apply_gpc(subject=subject, **request_facts(request))
        return Response({"withdrawn": [record.purpose_id for record in records]})


class SubjectStateView(ServerView):
    @extend_schema(
        summary="A person's current consent",
        parameters=[
            OpenApiParameter("userId", str),
            OpenApiParameter("anonymousId", str),
            OpenApiParameter("jurisdiction", str, description="ISO country code, for opt-out defaults."),
        ],
        responses={200: OpenApiResponse(description="Per purpose: allowed, last choice and when."), **ERRORS},
    )
    def get(self, request: Request) -> Response:
        body = parse(SubjectIn, {k: request.query_params.get(k, "") for k in ("userId", "anonymousId")})
        subject = Subject(user_id=body.user_id, anonymous_id=body.anonymous_id)
        jurisdiction = request.query_params.get("jurisdiction") or None
        return Response(selectors.consent_summary(subject, jurisdiction))


class SubjectLinkView(ServerView):
    @extend_schema(
        summary="Link an anonymous visitor to a user (identity stitching)",
        request=LinkIn,
        responses={200: OpenApiResponse(description="Whether a new link was recorded."), **ERRORS},
    )
    def post(self, request: Request) -> Response:
        body = parse(LinkIn, request.data)
        link = services.subject_link(anonymous_id=body.anonymous_id, user_id=body.user_id, source="api")
        return Response({"linked": link is not None})


class PreferenceLinkView(ServerView):
    @extend_schema(
        summary="A link to a person's preference center",
        description=(
            "Put it in e-mails and account pages. It expires (default 30 days), and it stops working when a "
            "newer link is issued for the same person, or when the person is erased."
        ),
        request=PreferenceLinkIn,
        responses={200: OpenApiResponse(description="`url` and `expiresAt`."), **ERRORS},
    )
    def post(self, request: Request) -> Response:
        body = parse(PreferenceLinkIn, request.data)
        path, expires_at = services.preference_link_issue(
            subject=Subject(user_id=body.user_id, anonymous_id=body.anonymous_id), max_age=body.expires_in
        )
        return Response({"url": request.build_absolute_uri(path), "expiresAt": expires_at.isoformat()})
