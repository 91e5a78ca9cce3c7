"""Argument types shared by the management commands (argparse calls them with the raw text)."""

import argparse
from datetime import date


def iso_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date like 2011-09-01") from None
