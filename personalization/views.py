"""The catalog REST API for a shop's backend, authenticated with a source's secret key."""

from datetime import UTC
from typing import Any

from django.conf import settings
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, generics, status
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api_errors import api_error_body, api_error_schema
from personalization import selectors, services
from personalization.catalog_input import ProductBatchIn, SkuListIn, validate_product_rows
from personalization.models import Category, Product
from personalization.serializers import (
    CategorySerializer,
    ProductActivationResultSerializer,
    ProductBatchResultSerializer,
    ProductSerializer,
)
from tracking.authentication import HasSourceSecretKey, SecretKeyAuthentication

ERROR_RESPONSES = {
    400: OpenApiResponse(api_error_schema(), description="Invalid request; `fields` names each problem."),
    401: OpenApiResponse(api_error_schema(), description="Missing, unknown or public (write) key."),
}


class CatalogView(APIView):
    authentication_classes = [SecretKeyAuthentication]
    permission_classes = [HasSourceSecretKey]


class ProductPagination(CursorPagination):
    ordering = "id"
    page_size = 100
    page_size_query_param = "limit"
    max_page_size = 1000


def _bool_param(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in {"true", "1", "yes"}:
        return True
    if raw.lower() in {"false", "0", "no"}:
        return False
    raise exceptions.ValidationError({name: ["must be true or false"]})


class ProductListView(CatalogView, generics.ListAPIView[Product]):
    serializer_class = ProductSerializer
    pagination_class = ProductPagination

    @extend_schema(
        summary="List products",
        parameters=[
            OpenApiParameter("is_active", OpenApiTypes.BOOL, description="Only active or only inactive products."),
            OpenApiParameter("category", OpenApiTypes.STR, description="A category path; includes its subtree."),
            OpenApiParameter("updated_since", OpenApiTypes.DATETIME, description="Changed at or after (ISO 8601)."),
            OpenApiParameter("limit", OpenApiTypes.INT, description="Page size, at most 1000."),
        ],
        responses={200: ProductSerializer(many=True), **ERROR_RESPONSES},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        updated_since = None
        if raw := self.request.query_params.get("updated_since"):
            try:
                updated_since = parse_datetime(raw)
                if updated_since is not None and updated_since.tzinfo is not None:
                    # In UTC: PostgreSQL takes offsets up to ±15:59 only, Python up to ±23:59.
                    updated_since = updated_since.astimezone(UTC)
            except (ValueError, OverflowError):  # not a time (an offset of +25:00), or past year 9999 in UTC
                updated_since = None
            if updated_since is None or updated_since.tzinfo is None:
                raise exceptions.ValidationError({"updated_since": ["must be an ISO 8601 date-time with a time zone"]})
        return selectors.product_list(
            is_active=_bool_param(self.request, "is_active"),
            category_path=self.request.query_params.get("category") or None,
            updated_since=updated_since,
        )


class ProductDetailView(CatalogView):
    @extend_schema(
        summary="Get a product by SKU", responses={200: ProductSerializer, 404: OpenApiResponse(api_error_schema())}
    )
    def get(self, request: Request, sku: str) -> Response:
        product = selectors.product_get(sku=sku)
        if product is None:
            raise exceptions.NotFound(f"No product with SKU {sku!r}.")
        return Response(ProductSerializer(product).data)

    @extend_schema(
        summary="Deactivate a product",
        description="The product stays in the catalog (orders keep referring to it) but is never recommended.",
        responses={200: ProductSerializer, 404: OpenApiResponse(api_error_schema())},
    )
    def delete(self, request: Request, sku: str) -> Response:
        result = services.product_bulk_set_active(skus=[sku], active=False)
        if result.unknown:
            raise exceptions.NotFound(f"No product with SKU {sku!r}.")
        return Response(ProductSerializer(selectors.product_get(sku=sku)).data)


class ProductBatchView(CatalogView):
    @extend_schema(
        summary="Create or update products by SKU",
        description=(
            "Each row is validated on its own: the good rows are stored and each refused row is listed "
            "in `rejected` with its index, SKU and the reason per field. Fields left out of a row keep "
            "their stored value. Sending the same rows again changes nothing (`unchanged`). At most "
            f"{settings.PZ_CATALOG_BATCH_LIMIT} rows per request. When every row is refused the answer is 400."
        ),
        request=ProductBatchIn,
        responses={200: ProductBatchResultSerializer, **ERROR_RESPONSES},
    )
    def post(self, request: Request) -> Response:
        rows = request.data.get("products") if isinstance(request.data, dict) else None
        if not isinstance(rows, list) or not rows:
            raise exceptions.ValidationError({"products": ["must be a non-empty list of product objects"]})
        limit = settings.PZ_CATALOG_BATCH_LIMIT
        if len(rows) > limit:
            raise exceptions.ValidationError({"products": [f"at most {limit} rows per request, got {len(rows)}"]})

        validated = validate_product_rows(rows)
        rejected = [error.as_dict() for error in validated.errors]
        if not validated.products:
            fields = {
                f"products.{error.index}.{name}": messages
                for error in validated.errors
                for name, messages in error.fields.items()
            }
            body = api_error_body(
                code="invalid_rows", detail="No product was stored: every row has errors.", fields=fields
            )
            return Response({**body, "rejected": rejected}, status=status.HTTP_400_BAD_REQUEST)
        result = services.product_bulk_upsert(products=validated.products)
        return Response(
            {
                "created": len(result.created),
                "updated": len(result.updated),
                "unchanged": len(result.unchanged),
                "rejected": rejected,
            }
        )


class ProductDeactivateView(CatalogView):
    @extend_schema(
        summary="Deactivate products",
        request=SkuListIn,
        responses={200: ProductActivationResultSerializer, **ERROR_RESPONSES},
    )
    def post(self, request: Request) -> Response:
        skus = request.data.get("skus") if isinstance(request.data, dict) else None
        if not isinstance(skus, list) or not skus or not all(isinstance(sku, str) and sku for sku in skus):
            raise exceptions.ValidationError({"skus": ["must be a non-empty list of SKUs"]})
        result = services.product_bulk_set_active(skus=skus, active=False)
        return Response({"deactivated": result.changed, "already_inactive": result.already, "unknown": result.unknown})


class CategoryListView(CatalogView, generics.ListAPIView[Category]):
    serializer_class = CategorySerializer
    pagination_class = None

    @extend_schema(summary="List the category tree", responses={200: CategorySerializer(many=True), **ERROR_RESPONSES})
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        return selectors.category_list()
