"""Display helpers for the demo shop's templates."""

import re
import zlib
from decimal import Decimal

from django import template

register = template.Library()

CURRENCY_SYMBOLS = {"GBP": "£", "EUR": "€", "USD": "$"}


@register.filter
def money(amount: Decimal | None, currency: str = "GBP") -> str:
    if amount is None:
        return ""
    symbol = CURRENCY_SYMBOLS.get(currency)
    return f"{symbol}{amount:,.2f}" if symbol else f"{amount:,.2f} {currency}"


@register.filter
def display_name(name: str) -> str:
    """Shout-case names from old inventory systems ("WHITE METAL LANTERN") read better in title case."""
    if not name.isupper():
        return name
    # Capitalise the first letter of each word, also after a hyphen (T-Light), not after an apostrophe (50's).
    return re.sub(r"(?<![\w'])[a-z]", lambda letter: letter.group(0).upper(), name.lower())


@register.filter
def hue(value: object) -> int:
    """A stable colour for a placeholder tile, from a category or product id."""
    return zlib.crc32(str(value).encode()) % 360
