"""The personal-data registry: every store of personal data says how to export and erase a subject.

Each app registers its own, explicitly, in its ``AppConfig.ready`` (no signals):

    from consent.registry import register_personal_data
    from tracking import privacy
    register_personal_data("tracking", export=privacy.subject_export, erase=privacy.subject_erase)

``export`` returns JSON-ready data; ``erase`` deletes or anonymises and returns what it removed
with counts (for the erasure receipt); ``purge`` (optional) deletes raw behavioural data older
than a cut-off (the nightly retention task).
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from consent.subjects import Identities

Exporter = Callable[[Identities], dict[str, Any]]
Eraser = Callable[[Identities], dict[str, int]]
Purger = Callable[[datetime], dict[str, int]]


@dataclass(frozen=True)
class PersonalDataStore:
    name: str
    export: Exporter
    erase: Eraser
    purge: Purger | None = None


_stores: dict[str, PersonalDataStore] = {}


def register_personal_data(name: str, *, export: Exporter, erase: Eraser, purge: Purger | None = None) -> None:
    store = PersonalDataStore(name, export, erase, purge)
    if name in _stores and _stores[name] != store:
        raise ImproperlyConfigured(f"Two different personal-data stores are registered as {name!r}.")
    _stores[name] = store


def personal_data_stores() -> list[PersonalDataStore]:
    return list(_stores.values())
