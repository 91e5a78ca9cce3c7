"""Model artifacts on disk, and the model each serving process answers from.

A version is a folder of NumPy files under ``PZ_MODEL_DIR``: the blend and its recommenders
(``model/``), the product id and SKU of each item row, the people (as keyed hashes, sorted, with
their rows), and what the model knows each person did. It is written to a temporary folder and
renamed into place, so a reader never sees half a version. Serving processes memory-map the
files: the operating system shares one copy between them, and loading takes milliseconds.

``active_model()`` returns the loaded active version. It asks the cache which version is active
(and its revision, bumped by an erasure) at most every ``PZ_MODEL_CHECK_SECONDS``, and loads a new
one when that changes: a serving process picks up a new version without a restart, and never
waits for a training, which happens elsewhere (a Celery worker) into a folder of its own.
"""

import json
import logging
import shutil
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from django.conf import settings
from django.core.cache import cache

from consent.selectors import hash_key_fingerprint
from personalization.recommenders.base import csr_arrays, csr_from, mapped
from personalization.recommenders.hybrid import Hybrid, TopLists
from personalization.training import Dataset

ACTIVE_KEY = "personalization:active-model"
HASH_BYTES = 32  # hex characters of a subject hash kept in model files
TOP_ARRAYS = ("rows", "scores", "leading", "shares")  # of each person's precomputed list (TopLists)

logger = logging.getLogger(__name__)


def version_directory(version_id: int) -> Path:
    return Path(settings.PZ_MODEL_DIR) / str(version_id)


def artifacts_write(directory: Path, dataset: Dataset, hybrid: Hybrid, history: sp.csr_matrix) -> None:
    """Write a version's files into ``directory`` (which must not exist yet), atomically."""
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    hybrid.save(partial / "model")
    hashes = np.array([h[:HASH_BYTES].encode() for h in dataset.subject_hashes()], dtype=f"S{HASH_BYTES}")
    order = np.argsort(hashes, kind="stable")
    arrays = {
        "items": dataset.product_ids.astype(np.int64),
        "item_skus": np.asarray(dataset.skus, dtype=str),
        "item_categories": np.asarray(dataset.data.items.categories, dtype=str),
        "user_hashes": hashes[order],
        "user_rows": order.astype(np.int64),
        "user_countries": np.asarray(dataset.data.user_countries, dtype="U2"),
        **csr_arrays("history", history),
    }
    top = None
    if settings.PZ_PRECOMPUTED_PER_PERSON > 0 and dataset.data.n_users:
        countries = np.asarray(dataset.data.user_countries, dtype="U2")
        top = hybrid.top_lists(history, countries, settings.PZ_PRECOMPUTED_PER_PERSON)
        arrays.update({f"top_{name}": getattr(top, name) for name in TOP_ARRAYS})
    for name, array in arrays.items():
        np.save(partial / f"{name}.npy", array, allow_pickle=False)
    (partial / "manifest.json").write_text(
        json.dumps(
            {
                "people": dataset.data.n_users,
                "items": dataset.data.n_items,
                "as_of": dataset.data.as_of,
                "top_parts": top.parts if top is not None else None,
                "hash_key": hash_key_fingerprint(),  # which PZ_PRIVACY_HASH_KEY made user_hashes
            }
        )
    )
    partial.rename(directory)


def artifacts_remove(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


@dataclass
class LoadedModel:
    version_id: int
    revision: int
    hybrid: Hybrid
    product_ids: np.ndarray
    skus: np.ndarray
    categories: np.ndarray
    user_hashes: np.ndarray
    user_rows: np.ndarray
    user_countries: np.ndarray
    history: sp.csr_matrix
    as_of: float
    top: TopLists | None = None  # each person's best items with no session (older versions: none)
    hash_key: str = ""  # the fingerprint of the key its people's hashes were made with ("": unknown)

    def __post_init__(self) -> None:
        self.memo: dict[str, Any] = {}  # what a process derives from this model (the catalog snapshot)
        self.row_of_product = {int(pk): row for row, pk in enumerate(self.product_ids)}
        self.row_of_sku = {str(sku): row for row, sku in enumerate(self.skus)}
        self._category_masks: dict[str, np.ndarray] = {}

    @property
    def n_items(self) -> int:
        return int(self.product_ids.shape[0])

    def in_category(self, path: str) -> np.ndarray:
        """Which items are in a category's subtree (cached per category)."""
        mask = self._category_masks.get(path)
        if mask is None:
            categories = np.asarray(self.categories, dtype=str)
            mask = (categories == path) | np.char.startswith(categories, path + " > ")
            if len(self._category_masks) > 1000:
                self._category_masks.clear()
            self._category_masks[path] = mask
        return mask

    def user_row(self, subject_hashes: list[str]) -> int:
        """The row of the first of these hashes that the model knows, else -1."""
        for full in subject_hashes:
            key = full[:HASH_BYTES].encode()
            position = int(np.searchsorted(self.user_hashes, key))
            if position < len(self.user_hashes) and self.user_hashes[position] == key:
                return int(self.user_rows[position])
        return -1


def hash_key_changed(directory: Path) -> bool:
    """Whether a version's people were hashed with another ``PZ_PRIVACY_HASH_KEY`` than the
    current one: then it knows none of them (each gets the cold-start list until a training with
    the current key). False when it cannot tell (an older version, files gone)."""
    try:
        recorded = json.loads((directory / "manifest.json").read_text()).get("hash_key", "")
    except (OSError, ValueError):
        return False
    return _another_key(recorded)


def _another_key(recorded: str) -> bool:
    return bool(recorded) and recorded != hash_key_fingerprint()


def model_load(directory: Path, *, version_id: int, revision: int) -> LoadedModel:
    arrays = {path.stem: mapped(path) for path in directory.glob("*.npy")}
    manifest = json.loads((directory / "manifest.json").read_text())
    if _another_key(manifest.get("hash_key", "")):
        logger.warning(
            "model version %s was trained with another PZ_PRIVACY_HASH_KEY: it knows none of its %s "
            "people now, and each gets the cold-start list until a training with the current key",
            version_id,
            manifest.get("people"),
        )
    return LoadedModel(
        version_id=version_id,
        revision=revision,
        hybrid=Hybrid.load(directory / "model"),
        product_ids=arrays["items"],
        skus=arrays["item_skus"],
        categories=arrays["item_categories"],
        user_hashes=arrays["user_hashes"],
        user_rows=arrays["user_rows"],
        user_countries=arrays["user_countries"],
        history=csr_from("history", arrays),
        as_of=float(manifest["as_of"]),
        hash_key=manifest.get("hash_key", ""),
        top=(
            TopLists(manifest["top_parts"], *(arrays[f"top_{name}"] for name in TOP_ARRAYS))
            if manifest.get("top_parts") is not None
            else None
        ),
    )


# --- the active version in this process ---------------------------------------------------------------

_lock = threading.Lock()


@dataclass
class _Process:
    model: LoadedModel | None = None
    key: tuple[int, int] | None = None
    checked: float = 0.0
    keeper: threading.Thread | None = None  # checks for the requests (``keep_checking``)


_state = _Process()

# Set while a request is answered from what this process holds because a store is down
# (personalization.serving.outages): the active version and its catalog snapshot are not checked.
held_only: ContextVar[bool] = ContextVar("held_only", default=False)


def active_pointer() -> tuple[int, int] | None:
    """(version id, revision) of the active version: from the cache, else the database."""
    pointer = cache.get(ACTIVE_KEY)
    if pointer is None:
        from personalization.selectors import model_version_active

        active = model_version_active()
        pointer = (active.pk, active.revision) if active is not None else ()
        # Only if still empty: an activation may have set it since the read (a fill must not undo it).
        cache.add(ACTIVE_KEY, pointer, None)
    return (int(pointer[0]), int(pointer[1])) if pointer else None


def active_pointer_refresh(pointer: tuple[int, int] | None) -> None:
    """Point every process at a version (each checks within a second); this one checks at once."""
    cache.set(ACTIVE_KEY, pointer or (), None)
    _state.checked = 0.0


def active_model() -> LoadedModel | None:
    """The active version, loaded (and re-checked at most every ``PZ_MODEL_CHECK_SECONDS``, by
    the process's keeper thread when it has one: then a request never loads a version)."""
    now = time.monotonic()
    if held_only.get() or now - _state.checked < settings.PZ_MODEL_CHECK_SECONDS or _kept(now):
        return _state.model
    return active_model_checked()


def active_model_checked(
    prepare: Callable[[LoadedModel], object] | None = None, *, when_due: bool = False
) -> LoadedModel | None:
    """Check which version is active now and load it if it changed; ``prepare`` runs on a newly
    loaded version before any request is given it (the keeper reads its catalog there).
    ``when_due``: only if the last check is ``PZ_MODEL_CHECK_SECONDS`` old (the keeper's rounds)."""
    if when_due and time.monotonic() - _state.checked < settings.PZ_MODEL_CHECK_SECONDS:
        return _state.model
    with _lock:
        pointer = active_pointer()
        _state.checked = time.monotonic()
        if pointer != _state.key:
            model = None
            if pointer is not None:
                directory = version_directory(pointer[0])
                if directory.is_dir():
                    model = model_load(directory, version_id=pointer[0], revision=pointer[1])
                    if prepare is not None:
                        prepare(model)
            _state.model, _state.key = model, pointer if model is not None else None
        return _state.model


def _kept(now: float) -> bool:
    """Whether a keeper thread runs and has checked lately (a stuck one leaves it to requests)."""
    keeper = _state.keeper
    return keeper is not None and keeper.is_alive() and now - _state.checked < 10 * settings.PZ_MODEL_CHECK_SECONDS


def keep_checking(keeper: threading.Thread | None) -> None:
    """From now on ``keeper`` (a thread that calls ``active_model_checked`` every second) checks
    which version is active for this process's requests; None: they check again themselves."""
    _state.keeper = keeper


def forget_loaded_model() -> None:
    """Drop this process's loaded model: the next ``active_model()`` asks the cache at once."""
    _state.model, _state.key, _state.checked = None, None, 0.0


# --- erasure -----------------------------------------------------------------------------------------


def artifacts_forget(directory: Path, subject_hashes: list[str]) -> int:
    """Remove people from a version's files: their hashes from the index, and their rows (history,
    country, every recommender's per-person arrays) zeroed. Returns how many were there."""
    from personalization.recommenders import RECOMMENDERS
    from personalization.recommenders.base import replace_file

    hashes = np.array(np.load(directory / "user_hashes.npy", allow_pickle=False))
    rows = np.array(np.load(directory / "user_rows.npy", allow_pickle=False))
    wanted = {h[:HASH_BYTES].encode() for h in subject_hashes}
    found = np.array([h in wanted for h in hashes], dtype=bool)
    if not found.any():
        return 0
    erased_rows = rows[found]
    replace_file(directory / "user_hashes.npy", hashes[~found])
    replace_file(directory / "user_rows.npy", rows[~found])
    countries = np.array(np.load(directory / "user_countries.npy", allow_pickle=False))
    countries[erased_rows] = ""
    replace_file(directory / "user_countries.npy", countries)
    data = np.array(np.load(directory / "history_data.npy", allow_pickle=False))
    indptr = np.load(directory / "history_indptr.npy", allow_pickle=False)
    for row in erased_rows:
        data[indptr[row] : indptr[row + 1]] = 0
    replace_file(directory / "history_data.npy", data)
    for name in TOP_ARRAYS:
        path = directory / f"top_{name}.npy"
        if path.exists():
            top = np.array(np.load(path, allow_pickle=False))
            top[erased_rows] = 0
            replace_file(path, top)
    for name in json.loads((directory / "model" / "components.json").read_text()):
        RECOMMENDERS[name].erase_rows(directory / "model" / name, erased_rows.tolist())
    return int(found.sum())


def artifacts_export(directory: Path, subject_hashes: list[str]) -> dict[str, Any] | None:
    """What a version's files hold about a person: the items of their history with weights, and
    the numbers each recommender keeps for them. None if they are not in it."""
    from personalization.recommenders import RECOMMENDERS

    model = model_load(directory, version_id=0, revision=0)
    row = model.user_row(subject_hashes)
    if row < 0:
        return None
    start, end = int(model.history.indptr[row]), int(model.history.indptr[row + 1])
    history = {
        str(model.skus[item]): round(float(weight), 6)
        for item, weight in zip(model.history.indices[start:end], model.history.data[start:end], strict=True)
        if weight
    }
    per_recommender: dict[str, Any] = {}
    for name in json.loads((directory / "model" / "components.json").read_text()):
        for array_name, csr_prefix in RECOMMENDERS[name].user_arrays.items():
            array = np.load(directory / "model" / name / f"{array_name}.npy", mmap_mode="r", allow_pickle=False)
            if csr_prefix:
                indptr = np.load(directory / "model" / name / f"{csr_prefix}_indptr.npy", mmap_mode="r")
                values = array[int(indptr[row]) : int(indptr[row + 1])]
            else:
                values = array[row]
            per_recommender.setdefault(name, {})[array_name] = np.asarray(values, dtype=np.float64).round(6).tolist()
    precomputed = [str(model.skus[item]) for item in model.top.rows[row]] if model.top is not None else []
    return {
        "history": history,
        "country": str(model.user_countries[row]),
        "recommenders": per_recommender,
        "precomputed_list": precomputed,
    }
