"""The recommendation API: ``GET /api/v1/recommendations``, for storefront widgets and shop servers."""

import logging
import time
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

import msgspec
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api_errors import api_error_schema, store_unavailable_response
from config.input_errors import msgspec_error_field
from config.store_outages import STORE_ERRORS
from consent.network import gpc_signal, request_facts
from consent.services import consent_apply_gpc
from consent.subjects import InvalidSubject, Subject
from personalization.serving import Served, ServeRequest, UnknownPlacement, serve
from personalization.serving.outages import held_answer, stores_breaker
from tracking.authentication import (
    FromAllowedOrigin,
    HasSourceKey,
    SourceCredential,
    WriteKeyQueryAuthentication,
    cors_any_origin,
    user_token_valid,
)
from tracking.internal_events import internal_event_send
from tracking.user_agents import describe_user_agent

logger = logging.getLogger(__name__)

PUBLIC_MAX_AGE = 60
JSON_RENDERER = JSONRenderer()
SOURCE_SECONDS = 60.0


class CachedSourceAuthentication(WriteKeyQueryAuthentication):
    """The keys of ``WriteKeyQueryAuthentication``, with each key's source kept in the process for
    a minute: a widget's every request would otherwise cost a query for its key (a revoked key
    stops working within that minute, as at the collector). While PostgreSQL is down, a key this
    process knew is taken as it was."""

    _known: ClassVar[dict[str, tuple[float, tuple[None, SourceCredential]]]] = {}

    def authenticate(self, request: Request) -> tuple[None, SourceCredential] | None:
        key = "|".join(
            (
                request.META.get("HTTP_AUTHORIZATION", ""),
                request.query_params.get("writeKey", ""),
            )
        )
        now = time.monotonic()
        known = self._known.get(key)
        if known is not None and known[0] > now:
            return known[1]
        try:
            found = super().authenticate(request)
        except STORE_ERRORS:
            if known is None:
                raise
            return known[1]  # PostgreSQL is down: the key as this process last knew it
        if found is not None:
            if len(self._known) > 10_000:
                self._known.clear()
            self._known[key] = (now + SOURCE_SECONDS, found)
        return found


class RecommendationQuery(serializers.Serializer[Any]):
    placement = serializers.SlugField(max_length=64, help_text="The placement's key, e.g. home.")
    anonymousId = serializers.CharField(max_length=128, required=False, allow_blank=True)
    userId = serializers.CharField(max_length=128, required=False, allow_blank=True)
    userToken = serializers.CharField(
        max_length=128,
        required=False,
        allow_blank=True,
        help_text="With the write key, userId counts only with this proof: HMAC-SHA256(userId), keyed with "
        "the hex SHA-256 of the source's secret key, computed by the shop's server.",
    )
    product = serializers.CharField(max_length=64, required=False, allow_blank=True, help_text="SKU on the page.")
    category = serializers.CharField(max_length=500, required=False, allow_blank=True, help_text="Category path.")
    limit = serializers.IntegerField(min_value=1, max_value=50, required=False)
    country = serializers.RegexField(r"^[A-Za-z]{2}$", required=False, allow_blank=True, help_text="ISO 3166 code.")
    writeKey = serializers.CharField(required=False, help_text="The source's write key (or HTTP Basic).")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs.get("anonymousId") and not attrs.get("userId"):
            raise serializers.ValidationError({"anonymousId": ["Give an anonymousId or a userId."]})
        return attrs


Text = Annotated[str, msgspec.Meta(max_length=128)]


class RecommendationParams(msgspec.Struct, kw_only=True):
    """``RecommendationQuery``'s rules, checked by msgspec: the serializer documents the API, this
    validates each request (a DRF serializer deep-copies its fields per request: 0.3 ms)."""

    placement: Annotated[str, msgspec.Meta(pattern=r"^[-a-zA-Z0-9_]+$", max_length=64)]
    anonymousId: Text = ""
    userId: Text = ""
    userToken: Text = ""
    product: Annotated[str, msgspec.Meta(max_length=64)] = ""
    category: Annotated[str, msgspec.Meta(max_length=500)] = ""
    limit: Annotated[int, msgspec.Meta(ge=1, le=50)] | None = None
    country: Annotated[str, msgspec.Meta(pattern=r"^([A-Za-z]{2})?$")] = ""


def recommendation_params(query: Mapping[str, str]) -> RecommendationParams:
    """The query's parameters, or a 400 naming the field and why."""
    values = {name: value.strip() for name, value in query.items() if name in RecommendationParams.__struct_fields__}
    if values.get("limit") == "":
        del values["limit"]
    try:
        params = msgspec.convert(values, RecommendationParams, strict=False)
    except msgspec.ValidationError as exc:
        field, reason = msgspec_error_field(exc)
        raise exceptions.ValidationError({field or "query": [reason]}) from exc
    if not params.anonymousId and not params.userId:
        raise exceptions.ValidationError({"anonymousId": ["Give an anonymousId or a userId."]})
    return params


class CampaignRefSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    version = serializers.IntegerField()


class RecommendedItemSerializer(serializers.Serializer[Any]):
    product_id = serializers.CharField(help_text="The product's SKU.")
    name = serializers.CharField()
    url = serializers.CharField()
    image_url = serializers.CharField()
    price = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField()
    position = serializers.IntegerField()


class RecommendationsSerializer(serializers.Serializer[Any]):
    rec_id = serializers.UUIDField(help_text="Send it back with Product Clicked (properties.rec_id) for attribution.")
    placement = serializers.CharField()
    campaign = CampaignRefSerializer(allow_null=True)
    strategy = serializers.CharField()
    items = RecommendedItemSerializer(many=True)
    personalized = serializers.BooleanField()
    note = serializers.CharField(help_text="Why the answer is not what was asked for (no consent, cold start, …).")
    fallback = serializers.ChoiceField(
        choices=["", "budget", "error", "outage"],
        help_text="Empty, or why the placement's fallback list answered: over the latency budget, an error, "
        "or a store's outage (then nothing personal is used, and the answer must not be cached).",
    )


def answer_body(served: Served) -> dict[str, Any]:
    campaign = served.campaign
    return {
        "rec_id": str(served.rec_id),
        "placement": served.placement,
        "campaign": {"id": campaign.id, "name": campaign.name, "version": campaign.version} if campaign else None,
        "strategy": served.strategy,
        "items": [
            {
                "product_id": item.product.sku,
                "name": item.product.name,
                "url": item.product.url,
                "image_url": item.product.image_url,
                "price": str(item.product.price),
                "currency": item.product.currency,
                "position": item.position,
            }
            for item in served.items
        ],
        "personalized": served.personalized,
        "note": served.note,
        "fallback": served.fallback,
    }


def exposure_event(served: Served, subject: Subject) -> dict[str, Any]:
    """The exposure as an event: it goes through the stream like every other."""
    campaign = served.campaign
    return {
        "type": "track",
        "event": "Recommendations Served",
        "messageId": f"rec-{served.rec_id}",
        **({"userId": subject.user_id} if subject.user_id else {}),
        **({"anonymousId": subject.anonymous_id} if subject.anonymous_id else {}),
        "properties": {
            "rec_id": str(served.rec_id),
            "placement": served.placement,
            "campaign_id": campaign.id if campaign else None,
            "campaign_version": campaign.version if campaign else None,
            "strategy": served.strategy,
            "personalized": served.personalized,
            "note": served.note,
            "products": [
                {"product_id": item.product.sku, "position": item.position, "propensity": item.propensity}
                for item in served.items
            ],
        },
        "context": {"pz": {"internal": "exposure"}},
    }


def served_and_logged(asked: ServeRequest, *, source_id: int, meta: dict[str, Any]) -> Served:
    """The answer, with the visitor's GPC signal recorded first and the exposure logged after."""
    if gpc_signal(meta):
        consent_apply_gpc(subject=asked.subject, **request_facts(meta, 0))
    served = serve(asked)
    internal_event_send(source_id=source_id, event=exposure_event(served, asked.subject), meta=meta)
    return served


class RecommendationsView(APIView):
    authentication_classes = [CachedSourceAuthentication]
    permission_classes = [HasSourceKey, FromAllowedOrigin]

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple[BaseRenderer, str]:
        """JSON, always (errors too): no Accept header to weigh on every widget's request."""
        return JSON_RENDERER, JSON_RENDERER.media_type

    @extend_schema(
        operation_id="recommendations",
        summary="The recommendations of a placement for a visitor",
        description=(
            "The placement's campaign for this visitor (audience, schedule, priority), its strategy and fallbacks "
            "and business rules, within the placement's latency budget. Without personalization consent (or with "
            "a GPC signal where the shop treats personalization as sharing) the answer is not personalized and "
            "says so. Authenticate with the source's write key (HTTP Basic or the writeKey parameter), or its "
            "secret key (Bearer) from a server."
        ),
        parameters=[RecommendationQuery],
        responses={
            200: RecommendationsSerializer,
            400: OpenApiResponse(api_error_schema(), description="Unknown placement or bad parameters."),
            401: OpenApiResponse(api_error_schema(), description="Missing or unknown key."),
            503: OpenApiResponse(
                api_error_schema(),
                description="A store is down and this server holds nothing to answer with (code store_unavailable); "
                "retry after Retry-After seconds.",
            ),
        },
    )
    def get(self, request: Request) -> HttpResponse:
        params = recommendation_params(request.GET)
        credential: SourceCredential = request.auth  # type: ignore[assignment]
        source = credential.source
        user_id = params.userId
        if user_id and not credential.secret and not user_token_valid(source, user_id, params.userToken):
            if not params.anonymousId:
                raise exceptions.ValidationError(
                    {"userToken": ["A browser asking in a user's name needs the userToken the shop's server computes."]}
                )
            user_id = ""  # served by the browser's own id only
        try:
            subject = Subject(user_id=user_id, anonymous_id=params.anonymousId)
        except InvalidSubject as exc:
            raise exceptions.ValidationError({"anonymousId": [str(exc)]}) from exc
        meta = dict(request.META)
        asked = ServeRequest(
            placement=params.placement,
            subject=subject,
            product=params.product,
            category=params.category,
            limit=params.limit,
            country=params.country.upper(),
            device=describe_user_agent(str(meta.get("HTTP_USER_AGENT", ""))).device,
        )
        served = None
        if not stores_breaker.opened:  # open: a store failed again and again lately, do not wait for it
            try:
                with stores_breaker:
                    served = served_and_logged(asked, source_id=source.pk, meta=meta)
            except UnknownPlacement as exc:
                raise exceptions.ValidationError({"placement": [str(exc)]}) from exc
            except STORE_ERRORS as exc:
                logger.warning("serving %s from memory: a store is unavailable (%r)", asked.placement, exc)
        if served is None:
            served = held_answer(asked)
            if served is None:
                return store_unavailable_response(request)
        # Encoded here rather than by DRF's renderer and content negotiation: the answer is JSON only.
        response = HttpResponse(msgspec.json.encode(answer_body(served)), content_type="application/json")
        if served.fallback == "outage":
            response["Cache-Control"] = "no-store"  # the stores are back in a moment: nobody keeps it
        elif served.personalized:
            response["Cache-Control"] = "private, no-store"
        else:
            response["Cache-Control"] = f"public, max-age={PUBLIC_MAX_AGE}"
        return response

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        cors_any_origin(request, response)
        return super().finalize_response(request, response, *args, **kwargs)
