"""``python manage.py import_merchant_feed PATH``: import a Google Merchant Center product feed.

Reads the TSV and the XML (RSS 2.0 / Atom, ``g:`` namespace) forms that Shopify, Magento and
most shop systems export. Good items are stored (created or updated by SKU); each refused item
is listed with its position, SKU and the reason per field.
"""

from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from personalization.catalog_input import RowError, validate_product_rows
from personalization.merchant_feed import FeedError, FeedRow, parse_merchant_feed
from personalization.selectors import product_list
from personalization.services import product_bulk_set_active, product_bulk_upsert

BATCH = 1000


class _DryRunRollback(Exception):
    pass


def _batches(rows: Iterator[FeedRow]) -> Iterator[list[FeedRow]]:
    while batch := list(islice(rows, BATCH)):
        yield batch


class Command(BaseCommand):
    help = "Import products from a Google Merchant Center feed file (TSV, or RSS/Atom XML with the g: namespace)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--format", choices=["tsv", "xml"], help="Default: detected from the file's first bytes.")
        parser.add_argument("--dry-run", action="store_true", help="Validate and report; store nothing.")
        parser.add_argument(
            "--deactivate-missing",
            action="store_true",
            help="Deactivate active products that are not in the feed (for a feed of the whole catalog).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["path"]
        if not path.is_file():
            raise CommandError(f"{path} does not exist.")
        try:
            with transaction.atomic():
                counts, rejected, deactivated = self._import(path, options)
                if options["dry_run"]:
                    raise _DryRunRollback
        except _DryRunRollback:
            pass
        except FeedError as exc:
            raise CommandError(f"{path}: {exc}. Nothing was stored.") from exc

        for error in rejected:
            reasons = "; ".join(f"{field}: {', '.join(messages)}" for field, messages in error.fields.items())
            self.stderr.write(f"Item {error.index} (SKU {error.sku or '?'}) refused: {reasons}")
        prefix = "Dry run, nothing stored. Would have: " if options["dry_run"] else ""
        summary = (
            f"{prefix}{counts['created']} created, {counts['updated']} updated, {counts['unchanged']} unchanged, "
            f"{len(rejected)} refused"
        )
        if options["deactivate_missing"]:
            summary += f", {deactivated} deactivated (not in the feed)"
        self.stdout.write(self.style.SUCCESS(summary) if not rejected else self.style.WARNING(summary))

    def _import(self, path: Path, options: dict[str, Any]) -> tuple[dict[str, int], list[RowError], int]:
        counts = {"created": 0, "updated": 0, "unchanged": 0}
        rejected: list[RowError] = []
        seen: set[str] = set()
        with path.open("rb") as stream:
            for batch in _batches(parse_merchant_feed(stream, feed_format=options["format"])):
                usable = []
                for row in batch:
                    if row.errors:
                        rejected.append(RowError(row.position, str(row.product.get("sku", "")), row.errors))
                    elif row.product.get("sku") in seen:
                        rejected.append(RowError(row.position, row.product["sku"], {"id": ["appears more than once"]}))
                    else:
                        seen.add(row.product["sku"])
                        usable.append(row)
                validated = validate_product_rows(row.product for row in usable)
                for error in validated.errors:  # map the batch index back to the item's position
                    rejected.append(RowError(usable[error.index].position, error.sku, error.fields))
                if validated.products:
                    result = product_bulk_upsert(products=validated.products)
                    counts["created"] += len(result.created)
                    counts["updated"] += len(result.updated)
                    counts["unchanged"] += len(result.unchanged)
        deactivated = 0
        if options["deactivate_missing"]:
            missing = product_list(is_active=True).exclude(sku__in=seen).values_list("sku", flat=True)
            deactivated = len(product_bulk_set_active(skus=list(missing), active=False).changed)
        rejected.sort(key=lambda error: error.index)
        return counts, rejected, deactivated
