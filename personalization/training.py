"""From stored orders and events to a training set, and from a training set to fitted recommenders.

Interactions are every line of every completed order (imported history, demo checkouts and
tracked ``Order Completed`` events share one table) and the stored product views, clicks and adds
to cart. A person is their user id, or their browser's anonymous id until it is linked to one.
Only people whose ``personalization`` consent allows it are in the set (the consent app answers,
and an erased person is suppressed, so they never come back); guest orders, which belong to no
one we could ask, are left out.

The parameters of every recommender and of the blend are in ``DEFAULT_PARAMS``; a shop overrides
them with ``PZ_RECOMMENDER_PARAMS``, ``evaluate --save`` with tuned values, a command with its own.
"""

import copy
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from django.conf import settings

from consent.selectors import linked_users, subject_hash, subjects_allowing
from consent.subjects import Subject
from personalization.models import Product, TunedParameters
from personalization.recommenders import RECOMMENDERS
from personalization.recommenders.base import (
    ADD,
    DAY,
    PURCHASE,
    VIEW,
    Interactions,
    ItemSide,
    Recommender,
    TrainingSet,
)
from personalization.recommenders.ease import TooManyItems
from personalization.recommenders.evaluation import PROTOCOLS, Window, evaluate, next_basket_lines, window
from personalization.recommenders.hybrid import Hybrid
from tracking.selectors import customer_countries, product_events, purchase_lines

COMPONENTS = ("popular", "trending", "content", "bought_together", "viewed_together", "ease", "buy_again", "lightfm")

DEFAULT_PARAMS: dict[str, Any] = {
    "kind_weights": {"view": 1.0, "add": 3.0, "purchase": 5.0},
    "history_half_life_days": 30.0,  # how fast what a person did fades from their query
    "holdout_days": 14,
    "popular": {},
    "trending": {"half_life_days": 7.0, "country_weight": 0.5, "min_country_users": 20},
    "content": {"neighbours": 100, "ngram_max": 2, "session_weight": 1.0},
    "bought_together": {"neighbours": 100, "alpha": 0.5, "shrink": 2.0, "session_weight": 1.0},
    "viewed_together": {"neighbours": 100, "alpha": 0.5, "shrink": 2.0, "session_weight": 1.0},
    "ease": {"l2": 5.0, "half_life_days": 90.0, "neighbours": 0, "max_items": 12_000, "session_weight": 1.0},
    "buy_again": {"half_life_days": 90.0, "timing_weight": 0.5, "min_cycles": 3},
    "lightfm": {
        "features": True,
        "components": 64,
        "epochs": 8,
        "learning_rate": 0.1,
        "feature_weight": 0.2,
        "description_words": 100,
        "threads": 2,
    },
    "hybrid": {
        "weights": {
            "repeat": {"ease": 1.0, "buy_again": 1.0, "trending": 0.9, "lightfm": 0.3},
            "new_items": {"ease": 1.0, "trending": 0.9, "content": 0.5, "lightfm": 0.5},
        },
        "affinity_weight": 0.0,
        "session_weight": 1.0,
    },
}


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict) and key != "weights":
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def effective_params(override: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The defaults, then ``PZ_RECOMMENDER_PARAMS``, then the newest tuned parameters, then ``override``."""
    params = _merge(DEFAULT_PARAMS, settings.PZ_RECOMMENDER_PARAMS)
    tuned = TunedParameters.objects.order_by("-created_at", "-id").first()
    if tuned is not None:
        params = _merge(params, tuned.params)
    return _merge(params, override or {})


# --- the training set -------------------------------------------------------------------------------


@dataclass
class Dataset:
    """A training set and what its rows stand for."""

    data: TrainingSet
    subjects: list[str]  # per user row: "u:<user id>" or "a:<anonymous id>"
    product_ids: np.ndarray  # per item row
    skus: list[str]
    counts: dict[str, int] = field(default_factory=dict)

    def subject_hashes(self) -> list[str]:
        return [subject_key_hash(subject) for subject in self.subjects]


def subject_key_hash(subject: str) -> str:
    """The keyed hash that stands for a person in model files (never their id)."""
    kind, _, value = subject.partition(":")
    return subject_hash("user" if kind == "u" else "anonymous", value)


def _catalog() -> tuple[np.ndarray, list[str], ItemSide]:
    rows = list(
        Product.objects.order_by("pk").values_list(
            "pk", "sku", "name", "description", "category__path", "brand", "tags", "price"
        )
    )
    items = ItemSide(
        texts=[f"{name} {description}".strip() for _, _, name, description, *_ in rows],
        categories=[row[4] or "" for row in rows],
        brands=[row[5] or "" for row in rows],
        tags=[[str(t) for t in row[6]] if isinstance(row[6], list) else [] for row in rows],
        prices=np.array([float(row[7]) if row[7] is not None else np.nan for row in rows], dtype=np.float64),
    )
    return np.array([row[0] for row in rows], dtype=np.int64), [row[1] for row in rows], items


def _subject(user_id: str, anonymous_id: str, links: Mapping[str, str]) -> str:
    if user_id:
        return f"u:{user_id}"
    if anonymous_id in links:
        return f"u:{links[anonymous_id]}"
    return f"a:{anonymous_id}" if anonymous_id else ""


def dataset_build(
    *, until: datetime | None = None, since: datetime | None = None, kind_weights: Mapping[str, float] | None = None
) -> Dataset:
    """Every consented person's interactions before ``until`` (default: everything stored)."""
    product_ids, skus, items = _catalog()
    row_of_product = {int(pk): row for row, pk in enumerate(product_ids)}
    row_of_sku = {sku: row for row, sku in enumerate(skus)}
    raw: list[tuple[str, str, int, float, int, int]] = []  # user id, anonymous id, item, time, kind, basket
    for user_id, anonymous_id, product_id, placed_at, order_pk in purchase_lines(since=since, until=until):
        raw.append((user_id, anonymous_id, row_of_product[product_id], placed_at.timestamp(), PURCHASE, order_pk))
    first_session = max((entry[5] for entry in raw), default=0) + 1
    sessions: dict[str, int] = {}
    for user_id, anonymous_id, name, timestamp, session_id, key in product_events(since=since, until=until):
        item = row_of_sku.get(key)
        if item is None:
            continue
        basket = sessions.setdefault(session_id, first_session + len(sessions)) if session_id else -1
        kind = ADD if name == "Product Added" else VIEW
        raw.append((user_id, anonymous_id, item, timestamp.timestamp(), kind, basket))

    links = linked_users({entry[1] for entry in raw if entry[1] and not entry[0]})
    subject_of = [_subject(entry[0], entry[1], links) for entry in raw]
    people = sorted(set(subject_of) - {""})
    countries = customer_countries(s[2:] for s in people if s.startswith("u:"))
    as_subject = {s: Subject(user_id=s[2:]) if s.startswith("u:") else Subject(anonymous_id=s[2:]) for s in people}
    allowed = subjects_allowing(
        as_subject.values(),
        "personalization",
        jurisdictions={as_subject[s]: countries[s[2:]] for s in people if s[2:] in countries and s.startswith("u:")},
    )
    people_kept = [s for s in people if as_subject[s] in allowed]
    row_of_person = {s: row for row, s in enumerate(people_kept)}
    keep = [i for i, s in enumerate(subject_of) if s in row_of_person]
    interactions = Interactions(
        users=np.array([row_of_person[subject_of[i]] for i in keep], dtype=np.int32),
        items=np.array([raw[i][2] for i in keep], dtype=np.int32),
        kinds=np.array([raw[i][4] for i in keep], dtype=np.int8),
        times=np.array([raw[i][3] for i in keep], dtype=np.float64),
        baskets=np.array([raw[i][5] for i in keep], dtype=np.int64),
    )
    latest = float(interactions.times.max()) + 1.0 if len(interactions) else time.time()
    data = TrainingSet(
        interactions=interactions,
        items=items,
        user_countries=[countries.get(s[2:], "") if s.startswith("u:") else "" for s in people_kept],
        as_of=until.timestamp() if until is not None else latest,
        kind_weights=dict(kind_weights or DEFAULT_PARAMS["kind_weights"]),
    )
    counts = {
        "people": len(people_kept),
        "people_without_consent": len(people) - len(people_kept),
        "items": len(product_ids),
        "interactions": len(interactions),
        "interactions_without_consent": sum(1 for s in subject_of if s) - len(keep),
        "guest_interactions": sum(1 for s in subject_of if not s),
        "purchases": int((interactions.kinds == PURCHASE).sum()),
        "views": int((interactions.kinds == VIEW).sum()),
        "adds": int((interactions.kinds == ADD).sum()),
    }
    return Dataset(data=data, subjects=people_kept, product_ids=product_ids, skus=skus, counts=counts)


# --- fitting ---------------------------------------------------------------------------------------


@dataclass
class Fitted:
    hybrid: Hybrid
    timings: dict[str, float]
    skipped: dict[str, str]


def fit_all(data: TrainingSet, params: Mapping[str, Any], names: Iterable[str] = COMPONENTS) -> Fitted:
    """Fit each recommender (timing each) and blend them."""
    components: dict[str, Recommender] = {}
    timings: dict[str, float] = {}
    skipped: dict[str, str] = {}
    for name in names:
        started = time.perf_counter()
        try:
            components[name] = RECOMMENDERS[name](**params.get(name, {})).fit(data)
        except TooManyItems as exc:
            skipped[name] = str(exc)
        timings[name] = round(time.perf_counter() - started, 3)
    hybrid = Hybrid(components, **params["hybrid"])
    hybrid.fit_affinities(data)
    return Fitted(hybrid, timings, skipped)


def holdout_window(dataset: Dataset, params: Mapping[str, Any]) -> Window:
    end = dataset.data.as_of
    return window(
        dataset.data, end - float(params["holdout_days"]) * DAY, end + 1.0,
        history_half_life_days=float(params["history_half_life_days"]),
    )  # fmt: skip


def holdout_metrics(fitted: Fitted, data: Window) -> dict[str, Any]:
    """NDCG, precision, recall, MAP and coverage at 10 of every recommender under both protocols,
    and the blend on the next-basket-line task with and without the session."""
    metrics: dict[str, Any] = {}
    scorers = {**fitted.hybrid.components, "hybrid": fitted.hybrid}
    for name, recommender in scorers.items():
        metrics[name] = {protocol: evaluate(recommender.score, data, protocol).as_dict() for protocol in PROTOCOLS}
    metrics["session"] = {
        "with_session": next_basket_lines(fitted.hybrid.score, data, with_session=True).as_dict(),
        "without_session": next_basket_lines(fitted.hybrid.score, data, with_session=False).as_dict(),
    }
    return metrics


def holdout_score(metrics: Mapping[str, Any]) -> float | None:
    """The figure activation compares: the blend's NDCG@10, averaged over both protocols."""
    hybrid = metrics.get("hybrid") or {}
    people = [hybrid.get(p, {}).get("people", 0) for p in PROTOCOLS]
    if not all(people):
        return None
    return float(np.mean([hybrid[p]["ndcg"] for p in PROTOCOLS]))
