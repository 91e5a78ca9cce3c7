import pytest

from personalization.models import Category, Product
from personalization.services import category_create, category_ensure_paths, category_update, product_bulk_set_active
from tests.factories import ProductFactory

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def test_ensure_paths_creates_each_level_once() -> None:
    found = category_ensure_paths(paths=["Home > Lighting > Lamps", "Home > Lighting", "Garden"])
    assert sorted(found) == ["Garden", "Home", "Home > Lighting", "Home > Lighting > Lamps"]
    lamps = found["Home > Lighting > Lamps"]
    assert (lamps.name, lamps.depth, lamps.slug, lamps.parent) == (
        "Lamps",
        2,
        "home/lighting/lamps",
        found["Home > Lighting"],
    )
    category_ensure_paths(paths=["Home > Lighting > Lamps"])
    assert Category.objects.count() == 4


def test_slugs_stay_unique_when_names_slugify_alike() -> None:
    found = category_ensure_paths(paths=["Home & Garden", "Home, Garden"])
    assert sorted(c.slug for c in found.values()) == ["home-garden", "home-garden-2"]


def test_moving_a_category_moves_its_subtree() -> None:
    found = category_ensure_paths(paths=["Home > Lighting > Lamps > Desk", "Decor"])
    category_update(category=found["Home > Lighting"], name="Lights", parent=found["Decor"])
    assert list(Category.objects.order_by("path").values_list("path", "depth", "slug")) == [
        ("Decor", 0, "decor"),
        ("Decor > Lights", 1, "decor/lights"),
        ("Decor > Lights > Lamps", 2, "decor/lights/lamps"),
        ("Decor > Lights > Lamps > Desk", 3, "decor/lights/lamps/desk"),
        ("Home", 0, "home"),
    ]


def test_a_category_cannot_move_under_its_own_subtree() -> None:
    found = category_ensure_paths(paths=["Home > Lighting"])
    with pytest.raises(ValueError, match="under itself or one of its descendants"):
        category_update(category=found["Home"], name="Home", parent=found["Home > Lighting"])
    assert Category.objects.get(name="Home").parent is None


def test_category_create_under_a_parent() -> None:
    parent = category_create(name="Kitchen", parent=None)
    child = category_create(name="Mugs", parent=parent)
    assert (child.path, child.slug) == ("Kitchen > Mugs", "kitchen/mugs")


def test_set_active_reports_changed_already_and_unknown() -> None:
    ProductFactory.create(sku="A")
    ProductFactory.create(sku="B", is_active=False)
    result = product_bulk_set_active(skus=["A", "B", "A", "Z"], active=True)
    assert (result.changed, result.already, result.unknown) == (["B"], ["A"], ["Z"])
    assert Product.objects.filter(is_active=True).count() == 2
