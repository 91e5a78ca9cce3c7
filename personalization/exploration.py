"""Exploration: sometimes show what the model is less sure of, and log how likely each shown item
was, so that later analysis can evaluate other policies off-line (inverse propensity scoring).

Pure: standard library only. Both policies take the candidates ranked by the model, best first.

- ``epsilon_greedy``: each slot, in order, takes the best remaining candidate with probability
  1 − ε, or one of the remaining ``pool`` uniformly at random with probability ε. The logged
  propensity is the exact probability that the item shown in that slot was chosen there, given
  the slots before it.
- ``thompson``: each candidate's click-through rate has a Beta(1 + clicks, 1 + impressions −
  clicks) posterior; each request draws one rate per candidate and ranks by it, the model's rank
  breaking near-ties. The propensity of each shown item at its slot has no closed form: it is
  estimated by drawing the posterior ``samples`` more times.
"""

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Explored:
    items: list[str]
    propensities: list[float]  # per shown item: the probability of that item at that slot


def epsilon_greedy(ranked: Sequence[str], k: int, epsilon: float, rng: random.Random, *, pool: int = 50) -> Explored:
    remaining = list(ranked[:pool])
    items: list[str] = []
    propensities: list[float] = []
    while remaining and len(items) < k:
        best = remaining[0]
        choice = rng.choice(remaining) if rng.random() < epsilon else best
        uniform = epsilon / len(remaining)
        propensities.append((1 - epsilon) + uniform if choice == best else uniform)
        items.append(choice)
        remaining.remove(choice)
    return Explored(items, propensities)


def _thompson_order(ranked: Sequence[str], stats: Mapping[str, tuple[int, int]], rng: random.Random) -> list[str]:
    def draw(position_sku: tuple[int, str]) -> tuple[float, int]:
        position, sku = position_sku
        impressions, clicks = stats.get(sku, (0, 0))
        rate = rng.betavariate(1 + clicks, 1 + max(impressions - clicks, 0))
        return (-rate, position)

    return [sku for _, sku in sorted(enumerate(ranked), key=draw)]


def thompson(
    ranked: Sequence[str],
    k: int,
    stats: Mapping[str, tuple[int, int]],
    rng: random.Random,
    *,
    pool: int = 30,
    samples: int = 200,
) -> Explored:
    """``stats``: {sku: (impressions, clicks)} of this campaign's slot."""
    candidates = list(ranked[:pool])
    items = _thompson_order(candidates, stats, rng)[:k]
    counts = [0] * len(items)
    for _ in range(samples):
        again = _thompson_order(candidates, stats, rng)[: len(items)]
        for slot, sku in enumerate(items):
            counts[slot] += again[slot] == sku
    return Explored(items, [max(count, 1) / samples for count in counts])
