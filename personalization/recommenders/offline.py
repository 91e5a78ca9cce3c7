"""The offline evaluation ``manage.py evaluate`` runs (pure: no Django).

1. Split time: the last ``test_days`` are the test window, the ``validation_days`` before them the
   validation window.
2. Tune on validation: each recommender's hyper-parameters (optuna's TPE sampler, ``trials`` per
   recommender, starting from the current parameters, so tuning never does worse on validation
   than the defaults), then the blend's weights per protocol, on the mean over the validation
   window and the one before it (one window alone teaches the blend its season). The baselines
   are tuned the same way, with the same budget, under each protocol: the comparison is fair to
   them.
3. Refit everything with its tuned parameters on all data before the test window, and score the
   test window once, under both protocols, plus the next-basket-line task for the session.
"""

import copy
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna

from personalization.recommenders import RECOMMENDERS
from personalization.recommenders.base import DAY, Recommender, TrainingSet, Visitors, scaled
from personalization.recommenders.baselines import ImplicitALS
from personalization.recommenders.evaluation import PROTOCOLS, Window, evaluate, next_basket_lines, window
from personalization.recommenders.hybrid import Hybrid
from personalization.recommenders.hybrid_factors import LightFMHybrid

Space = Callable[[optuna.Trial], dict[str, Any]]

SPACES: dict[str, Space] = {
    "trending": lambda t: {
        "half_life_days": t.suggest_float("half_life_days", 1.0, 60.0, log=True),
        "country_weight": t.suggest_float("country_weight", 0.0, 1.0),
    },
    "content": lambda t: {
        "ngram_max": t.suggest_int("ngram_max", 1, 2),
        "neighbours": t.suggest_categorical("neighbours", [50, 100, 200]),
    },
    "bought_together": lambda t: {
        "alpha": t.suggest_float("alpha", 0.3, 0.9),
        "shrink": t.suggest_float("shrink", 0.1, 20.0, log=True),
        "half_life_days": t.suggest_categorical("half_life_days", [None, 90.0, 365.0]),
    },
    "ease": lambda t: {
        "l2": t.suggest_float("l2", 0.5, 50.0, log=True),
        "half_life_days": t.suggest_categorical("half_life_days", [None, 30.0, 90.0, 180.0, 365.0]),
    },
    "buy_again": lambda t: {
        "half_life_days": t.suggest_float("half_life_days", 14.0, 730.0, log=True),
        "timing_weight": t.suggest_float("timing_weight", 0.0, 2.0),
    },
    "lightfm": lambda t: {
        "components": t.suggest_categorical("components", [32, 64, 96]),
        "epochs": t.suggest_int("epochs", 5, 15),
        "learning_rate": t.suggest_float("learning_rate", 0.02, 0.15, log=True),
        "feature_weight": t.suggest_float("feature_weight", 0.05, 0.5),
        "description_words": t.suggest_categorical("description_words", [0, 100, 300]),
    },
    "lightfm_no_features": lambda t: {
        "components": t.suggest_categorical("components", [32, 64, 96]),
        "epochs": t.suggest_int("epochs", 5, 25),
        "learning_rate": t.suggest_float("learning_rate", 0.02, 0.15, log=True),
    },
    "als": lambda t: {
        "factors": t.suggest_categorical("factors", [32, 64, 128]),
        "regularization": t.suggest_float("regularization", 1e-3, 1.0, log=True),
        "alpha": t.suggest_float("alpha", 0.5, 50.0, log=True),
        "binary": t.suggest_categorical("binary", [False, True]),
    },
}
SPACES["viewed_together"] = SPACES["bought_together"]
# Each of ours is tuned for what it is for: buy-again predicts reorders, the rest discovery.
TUNED_ON = {"buy_again": "repeat"}
BASELINES = ("popular", "als", "lightfm_no_features")
LABELS = {"popular": "most popular", "als": "implicit ALS", "lightfm_no_features": "LightFM, no features"}


def make(name: str, params: Mapping[str, Any]) -> Recommender:
    if name == "als":
        return ImplicitALS(**params)
    if name == "lightfm_no_features":
        return LightFMHybrid(**{**params, "features": False})
    return RECOMMENDERS[name](**params)


@dataclass
class Report:
    """What ``evaluate`` prints: the test metrics per recommender and protocol, and how they came about."""

    people: int
    items: int
    interactions: int
    test_since: float
    validation_since: float
    end: float
    test: dict[str, dict[str, dict[str, float | int]]] = field(default_factory=dict)
    session: dict[str, dict[str, float | int]] = field(default_factory=dict)
    tuned: dict[str, Any] = field(default_factory=dict)
    validation_ndcg: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def _study(seed: int) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))


def _start(space: Space, current: Mapping[str, Any]) -> dict[str, Any]:
    """The current parameters, as far as the search space has them (the first trial)."""
    recorder = optuna.trial.FixedTrial(dict(current))
    try:
        return space(recorder)  # type: ignore[arg-type]  # FixedTrial answers the same calls as Trial
    except ValueError:  # a current value outside the space
        return {}


def tune(
    name: str, data: Window, protocol: str, trials: int, current: Mapping[str, Any], seed: int = 0
) -> tuple[dict[str, Any], float]:
    """The best parameters of one recommender on a validation window, and its NDCG@10 there."""
    space = SPACES.get(name)
    if space is None or trials <= 0:
        recommender = make(name, current).fit(data.train)
        return dict(current), evaluate(recommender.score, data, protocol).ndcg
    study = _study(seed)
    start = _start(space, current)
    if start:
        study.enqueue_trial(start)

    def objective(trial: optuna.Trial) -> float:
        recommender = make(name, {**current, **space(trial)}).fit(data.train)
        return evaluate(recommender.score, data, protocol).ndcg

    study.optimize(objective, n_trials=trials)
    return {**current, **study.best_params}, float(study.best_value)


class _Precomputed:
    """The scaled scores of each component for a window's people, computed once, so that a blend
    trial is a weighted sum instead of a refit."""

    def __init__(self, components: Mapping[str, Recommender], hybrid: Hybrid, data: Window) -> None:
        self.position = {int(u): i for i, u in enumerate(data.users)}
        visitors = data.visitors(data.users)
        self.parts = {name: scaled(c.score(visitors)).astype(np.float32) for name, c in components.items()}
        self.parts["affinity"] = hybrid.affinities(visitors).astype(np.float32)

    def scorer(self, weights: Mapping[str, float]) -> Callable[[Visitors], np.ndarray]:
        def score(visitors: Visitors) -> np.ndarray:
            positions = [self.position[int(r)] for r in visitors.rows]
            total = np.zeros((len(positions), next(iter(self.parts.values())).shape[1]))
            for name, weight in weights.items():
                if weight:
                    total += weight * self.parts[name][positions]
            return total

        return score


Fold = tuple[Mapping[str, Recommender], Hybrid, Window]


def tune_blend(folds: list[Fold], trials: int, seed: int = 0) -> tuple[dict[str, Any], dict[str, float]]:
    """Blend weights per protocol (and the weight of the live category and brand affinities),
    maximising the mean NDCG@10 over validation windows (``folds``: each its components fitted on
    what came before it): with one window, the weights learn that window's season."""
    precomputed = [(_Precomputed(components, hybrid, data), data) for components, hybrid, data in folds]
    hybrid = folds[0][1]
    names = list(precomputed[0][0].parts)
    weights: dict[str, dict[str, float]] = {}
    best: dict[str, float] = {}
    affinity: dict[str, float] = {}
    for protocol in PROTOCOLS:
        mode = "new_items" if protocol == "new-items" else "repeat"
        study = _study(seed)
        current = {**hybrid.params["weights"][mode], "affinity": float(hybrid.params["affinity_weight"])}
        study.enqueue_trial({name: min(float(current.get(name, 0.0)), 1.0) for name in names})

        def objective(trial: optuna.Trial) -> float:
            chosen = {name: trial.suggest_float(name, 0.0, 1.0) for name in names}
            return float(
                np.mean([evaluate(p.scorer(chosen), data, protocol).ndcg for p, data in precomputed])  # noqa: B023
            )

        study.optimize(objective, n_trials=trials)
        chosen = dict(study.best_params)
        affinity[mode] = chosen.pop("affinity")
        weights[mode] = {name: round(w, 4) for name, w in chosen.items() if w > 0.0}
        best[protocol] = float(study.best_value)
    # One affinity weight serves both lists: the one of the discovery blend, where it matters most.
    return {**hybrid.params, "weights": weights, "affinity_weight": round(affinity["new_items"], 4)}, best


def _fit_all(
    names: Iterable[str], data: TrainingSet, params: Mapping[str, Any], skip: Callable[[str, Exception], None]
) -> dict[str, Recommender]:
    fitted = {}
    for name in names:
        try:
            fitted[name] = make(name, params.get(name, {})).fit(data)
        except ValueError as exc:  # e.g. too many items for the item regression
            skip(name, exc)
    return fitted


def run(
    data: TrainingSet,
    params: Mapping[str, Any],
    *,
    components: tuple[str, ...],
    trials: int = 10,
    blend_trials: int = 60,
    test_days: float = 14,
    validation_days: float = 14,
    progress: Callable[[str], None] = lambda message: None,
) -> Report:
    """Tune on the validation window, then score the test window once (see the module's docstring)."""
    started = time.perf_counter()
    end = data.as_of
    test_since, validation_since = end - test_days * DAY, end - (test_days + validation_days) * DAY
    half_life = float(params["history_half_life_days"])
    validation = window(data, validation_since, test_since, history_half_life_days=half_life)
    test = window(data, test_since, end + 1.0, history_half_life_days=half_life)
    report = Report(data.n_users, data.n_items, len(data.interactions), test_since, validation_since, end)
    tuned: dict[str, Any] = copy.deepcopy(dict(params))

    def skip(name: str, exc: Exception) -> None:
        progress(f"{name} left out: {exc}")

    for name in dict.fromkeys((*components, *BASELINES)):  # popular is both ours and a baseline
        protocols = PROTOCOLS if name in BASELINES else (TUNED_ON.get(name, "new-items"),)
        for protocol in protocols:
            step = time.perf_counter()
            key = f"{name}@{protocol}" if name in BASELINES else name
            try:
                best, ndcg = tune(name, validation, protocol, trials, params.get(name, {}))
            except ValueError as exc:
                skip(name, exc)
                continue
            tuned[key] = best
            report.validation_ndcg.setdefault(name, {})[protocol] = round(ndcg, 4)
            report.seconds[f"tune {key}"] = round(time.perf_counter() - step, 1)
            progress(f"tuned {key}: validation NDCG@10 {ndcg:.4f}")

    step = time.perf_counter()
    folds: list[Fold] = []
    earlier = window(data, validation_since - validation_days * DAY, validation_since, history_half_life_days=half_life)
    for fold in (validation, earlier):
        if len(fold.users) == 0:
            continue
        ours = _fit_all(components, fold.train, tuned, skip)
        hybrid = Hybrid(ours, **tuned["hybrid"])
        hybrid.fit_affinities(fold.train)
        folds.append((ours, hybrid, fold))
    tuned["hybrid"], blend_best = tune_blend(folds, blend_trials)
    report.validation_ndcg["hybrid"] = {p: round(v, 4) for p, v in blend_best.items()}
    report.seconds["tune blend"] = round(time.perf_counter() - step, 1)
    progress(f"tuned the blend: validation NDCG@10 {blend_best}")

    step = time.perf_counter()
    ours = _fit_all(components, test.train, tuned, skip)
    hybrid = Hybrid(ours, **tuned["hybrid"])
    hybrid.fit_affinities(test.train)
    for name, recommender in {**ours, "hybrid": hybrid}.items():
        report.test[name] = {p: evaluate(recommender.score, test, p).as_dict() for p in PROTOCOLS}
    for name in BASELINES:
        report.test[name] = {}
        for protocol in PROTOCOLS:
            baseline = make(name, tuned.get(f"{name}@{protocol}", {})).fit(test.train)
            report.test[name][protocol] = evaluate(baseline.score, test, protocol).as_dict()
    report.session = {
        "with_session": next_basket_lines(hybrid.score, test, with_session=True).as_dict(),
        "without_session": next_basket_lines(hybrid.score, test, with_session=False).as_dict(),
    }
    report.seconds["refit and test"] = round(time.perf_counter() - step, 1)
    report.seconds["total"] = round(time.perf_counter() - started, 1)
    report.tuned = {k: v for k, v in tuned.items() if "@" not in k}
    return report


def best_against_baselines(report: Report, protocol: str) -> tuple[str, float, str, float]:
    """(our best recommender, its NDCG@10, the best baseline, its NDCG@10) on the test window."""
    ndcg: Callable[[str], float] = lambda name: float(report.test[name][protocol]["ndcg"])  # noqa: E731
    ours = max((n for n in report.test if n not in BASELINES), key=ndcg)
    baseline = max(BASELINES, key=ndcg)
    return ours, ndcg(ours), baseline, ndcg(baseline)
