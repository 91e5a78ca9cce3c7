"""The category derived from an Online Retail description (pure module: no database, no Django)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from personalization.categorize import (
    CATEGORY_SEPARATOR,
    FALLBACK_CATEGORY,
    SEASONAL_RULES,
    TAXONOMY,
    category_for_description,
)

CATEGORIES = {rule.category for rule in SEASONAL_RULES + TAXONOMY} | {FALLBACK_CATEGORY}


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        # 1. seasonal words win, whatever the product
        ("PAPER CHAIN KIT 50'S CHRISTMAS", "Seasonal > Christmas"),
        ("CHRISTMAS TREE T-LIGHT HOLDER", "Seasonal > Christmas"),
        ("SET 10 CARDS 12 DAYS OF XMAS 17059", "Seasonal > Christmas"),
        ("WOODEN ADVENT CALENDAR CREAM", "Seasonal > Christmas"),
        ("SET OF 6 T-LIGHTS EASTER CHICKS", "Seasonal > Easter"),
        ("SET OF 6 HALLOWEEN GHOST T-LIGHTS", "Seasonal > Halloween"),
        # 2. phrases, including one before a later product noun
        ("WHITE HANGING HEART T-LIGHT HOLDER", "Home Decor > Candles & Holders"),
        ("T-LIGHT HOLDER SILVER SAUCER", "Home Decor > Candles & Holders"),
        ("REGENCY CAKESTAND 3 TIER", "Kitchen & Dining > Cake Stands"),
        ("CAKE STAND VICTORIAN FILIGREE LARGE", "Kitchen & Dining > Cake Stands"),
        ("PACK OF 72 RETROSPOT CAKE CASES", "Kitchen & Dining > Baking & Preserving"),
        ("SET OF 3 CAKE TINS PANTRY DESIGN", "Kitchen & Dining > Baking & Preserving"),
        ("JAM MAKING SET WITH JARS", "Kitchen & Dining > Baking & Preserving"),
        ("JUMBO BAG RED RETROSPOT", "Bags & Accessories > Shopping & Jumbo Bags"),
        ("JUMBO BAG CHARLIE AND LOLA TOYS", "Bags & Accessories > Shopping & Jumbo Bags"),
        ("PINK DAISY BAG CHARM", "Bags & Accessories > Keyrings & Charms"),
        ("LUNCH BOX WITH CUTLERY RETROSPOT", "Kitchen & Dining > Lunch & Picnic"),
        ("LUNCH BAG RED RETROSPOT", "Kitchen & Dining > Lunch & Picnic"),
        ("HOT WATER BOTTLE TEA AND SYMPATHY", "Bath & Beauty > Hot Water Bottles & Warmers"),
        ("MILK BOTTLE WITH GLASS STOPPER", "Kitchen & Dining > Glassware & Bottles"),
        ("CARD HOLDER GINGHAM HEART", "Stationery > Magnets & Memo Boards"),
        ("HOME SWEET HOME KEY HOLDER", "Home Decor > Hooks, Knobs & Hangers"),
        ("EMBOSSED HEART TRINKET BOX", "Storage & Organisation > Trinket & Keepsake Boxes"),
        ("MONEY BOX BISCUITS DESIGN", "Storage & Organisation > Money Boxes"),
        ("PAPER CHAIN KIT LONDON", "Party & Celebration > Bunting & Garlands"),
        ("SET OF 4 NAPKIN CHARMS CUTLERY", "Kitchen & Dining > Placemats & Coasters"),
        ('LETTER "W" BLING KEY RING', "Bags & Accessories > Keyrings & Charms"),
        # 3. head noun: the last product noun, skipping designs, colours and sizes; plurals folded
        ("SET OF 4 KNICK KNACK TINS LONDON", "Kitchen & Dining > Tins & Jars"),
        ("DOORMAT FANCY FONT HOME SWEET HOME", "Home Decor > Doormats & Doorstops"),
        ("DOORSTOP RETROSPOT HEART", "Home Decor > Doormats & Doorstops"),
        ("WRAP DOLLY GIRL", "Stationery > Gift Wrap & Ribbons"),
        ("FAIRY CAKE DESIGN UMBRELLA", "Bags & Accessories > Umbrellas & Parasols"),
        ("BISCUITS SMALL BOWL LIGHT BLUE", "Kitchen & Dining > Plates & Bowls"),
        ("BLACK CHERRY LIGHTS", "Home Decor > Lights & Lanterns"),
        ("3 GARDENIA MORRIS BOXED CANDLES", "Home Decor > Candles & Holders"),
        ("NEW BAROQUE BLACK BOXES", "Storage & Organisation > Storage Boxes & Baskets"),
        ("SET OF 36 DOILIES PANTRY DESIGN", "Party & Celebration > Party Tableware"),
        ("MIDNIGHT BLUE COPPER FLOWER NECKLAC", "Jewellery > Necklaces"),
        ("PARTY INVITES BALLOON GIRL", "Stationery > Cards & Invitations"),
        # packaging and accessories after IN/WITH do not name the product
        ("BLUE  DIAMANTE PEN IN GIFT BOX", "Stationery > Pens & Pencils"),
        ("SHELF WITH 4 HOOKS HOME SWEET HOME", "Home Decor > Small Furniture"),
        ("PLASTERS IN TIN CIRCUS PARADE", "Bath & Beauty > Tissues & First Aid"),
        # a motif names the product only when nothing else does
        ("WOODLAND LARGE RED FELT HEART", "Home Decor > Decorations & Ornaments"),
        ("SET OF 9 HEART SHAPED BALLOONS", "Party & Celebration > Balloons"),
        # lower case and mixed case
        ("white hanging heart t-light holder", "Home Decor > Candles & Holders"),
        ("Dr. Jam's Arouzer Stress Ball", "Toys & Games > Toys"),
        # 4. fallback
        ("", FALLBACK_CATEGORY),
        ("?", FALLBACK_CATEGORY),
        ("check", FALLBACK_CATEGORY),
        ("damaged", FALLBACK_CATEGORY),
        ("Next Day Carriage", FALLBACK_CATEGORY),
    ],
)
def test_category_for_description(description: str, expected: str) -> None:
    assert category_for_description(description) == expected


def test_taxonomy_is_two_levels_with_a_dozen_departments() -> None:
    for category in CATEGORIES:
        top, sub = category.split(CATEGORY_SEPARATOR)
        for level in (top, sub):
            assert level.strip()
            assert ">" not in level
            assert len(level) <= 100
    departments = {category.split(CATEGORY_SEPARATOR)[0] for category in CATEGORIES}
    assert 10 <= len(departments) <= 14


def _assert_well_formed(category: str) -> None:
    levels = category.split(CATEGORY_SEPARATOR)
    assert len(levels) == 2
    assert all(level and ">" not in level for level in levels)
    assert category in CATEGORIES


@given(st.text())
def test_any_text_gets_a_two_level_path_deterministically(text: str) -> None:
    category = category_for_description(text)
    _assert_well_formed(category)
    assert category_for_description(text) == category


WORDS = ["T-LIGHT", "HOLDER", "CAKE", "CASES", "BAG", "CHARM", "HEART", "IN", "WITH", "W", "LIGHT", "BLUE"]
WORDS += ["HOT", "WATER", "BOTTLE", "CHRISTMAS", "BOX", "LUNCH", "SET", "OF", "3", "/", "'S", '"A"', "NECKLAC"]


@given(st.lists(st.sampled_from(WORDS), max_size=8).map(" ".join))
def test_catalogue_like_text_gets_a_known_category_whatever_the_case(text: str) -> None:
    category = category_for_description(text)
    _assert_well_formed(category)
    assert category_for_description(text.lower()) == category
