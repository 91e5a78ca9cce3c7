"""Writes of the personalization app, by area; everything is importable from here."""

from personalization.services.catalog import (
    ProductActivationResult,
    ProductUpsertResult,
    category_create,
    category_ensure_paths,
    category_update,
    product_bulk_set_active,
    product_bulk_upsert,
)
from personalization.services.model_versions import (
    ModelVersionError,
    model_version_activate,
    model_version_train,
    model_versions_forget,
    model_versions_prune,
)

__all__ = [
    "ModelVersionError",
    "ProductActivationResult",
    "ProductUpsertResult",
    "category_create",
    "category_ensure_paths",
    "category_update",
    "model_version_activate",
    "model_version_train",
    "model_versions_forget",
    "model_versions_prune",
    "product_bulk_set_active",
    "product_bulk_upsert",
]
