from decimal import Decimal

import factory

from personalization.models import Category, Product
from tracking.models import Customer


class CategoryFactory(factory.django.DjangoModelFactory[Category]):
    class Meta:
        model = Category
        django_get_or_create = ("path",)

    name = factory.Sequence(lambda n: f"Category {n}")
    path = factory.LazyAttribute(lambda c: f"{c.parent.path} > {c.name}" if c.parent else c.name)
    slug = factory.Sequence(lambda n: f"category-{n}")
    depth = factory.LazyAttribute(lambda c: c.path.count(" > "))
    parent = None


class ProductFactory(factory.django.DjangoModelFactory[Product]):
    class Meta:
        model = Product

    sku = factory.Sequence(lambda n: f"SKU{n:05d}")
    name = factory.Sequence(lambda n: f"Product {n}")
    price = Decimal("9.99")
    currency = "GBP"
    category = factory.SubFactory(CategoryFactory)


class CustomerFactory(factory.django.DjangoModelFactory[Customer]):
    class Meta:
        model = Customer

    user_id = factory.Sequence(lambda n: str(10000 + n))
    country = "GB"
