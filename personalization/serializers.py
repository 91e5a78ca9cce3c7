"""Output shapes of the catalog API (input is validated by ``catalog_input``)."""

from rest_framework import serializers

from personalization.catalog_input import PRODUCT_FIELDS
from personalization.models import Category, Product


class ProductSerializer(serializers.ModelSerializer[Product]):
    category = serializers.CharField(source="category.path", default="", read_only=True)

    class Meta:
        model = Product
        fields = [*PRODUCT_FIELDS, "created_at", "updated_at"]
        read_only_fields = fields


class CategorySerializer(serializers.ModelSerializer[Category]):
    # DRF's metaclass takes declared fields off the class, so this does not shadow Field.parent.
    parent = serializers.CharField(source="parent.path", default=None, read_only=True)  # type: ignore[assignment]

    class Meta:
        model = Category
        fields = ["path", "name", "parent", "depth", "slug"]
        read_only_fields = fields


class ProductBatchResultSerializer(serializers.Serializer[None]):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    rejected = serializers.ListField(
        child=serializers.DictField(), help_text="Each refused row: index, sku and fields with reasons."
    )


class ProductActivationResultSerializer(serializers.Serializer[None]):
    deactivated = serializers.ListField(child=serializers.CharField())
    already_inactive = serializers.ListField(child=serializers.CharField())
    unknown = serializers.ListField(child=serializers.CharField())
