"""Whether a purpose is allowed, from a subject's latest choices (pure: no Django imports).

The rules, in order:
1. A required purpose (``necessary``) is always allowed.
2. An erased (suppressed) subject is allowed nothing else until they consent again.
3. The latest explicit choice decides: a withdrawal always counts; a grant counts unless a policy
   version that requires renewal was published after it, in which case the purpose falls back to
   its default until the person chooses again.
4. With no choice that counts, the purpose's default for the jurisdiction: opt-out (allowed) where
   the shop configured it, otherwise opt-in (not allowed). An unknown jurisdiction is opt-in.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


class UnknownPurpose(KeyError):
    pass


@dataclass(frozen=True)
class Choice:
    granted: bool
    recorded_at: str  # ISO 8601, UTC
    policy_version: int | None
    source: str
    gpc: bool

    def as_list(self) -> list[Any]:
        return [self.granted, self.recorded_at, self.policy_version, self.source, self.gpc]

    @classmethod
    def from_list(cls, values: list[Any]) -> "Choice":
        return cls(*values)


@dataclass(frozen=True)
class PurposeRule:
    required: bool
    opt_out_jurisdictions: tuple[str, ...]


@dataclass(frozen=True)
class PolicyState:
    """The published policy as far as decisions need it."""

    version: int | None
    renewal_from: int | None  # the latest published version that requires renewal
    purposes: Mapping[str, PurposeRule]


def latest_choices(records: Iterable[tuple[str, Choice]]) -> dict[str, Choice]:
    """The latest choice per purpose from ``(purpose, choice)`` pairs given oldest first."""
    latest: dict[str, Choice] = {}
    for purpose, choice in records:
        latest[purpose] = choice
    return latest


def merge_choices(*choice_sets: Mapping[str, Choice]) -> dict[str, Choice]:
    """Per purpose, the most recent choice among several identities of one person."""
    merged: dict[str, Choice] = {}
    for choices in choice_sets:
        for purpose, choice in choices.items():
            if purpose not in merged or choice.recorded_at > merged[purpose].recorded_at:
                merged[purpose] = choice
    return merged


def choice_counts(choice: Choice | None, policy: PolicyState) -> bool:
    """Whether a choice still stands (withdrawals always do; old grants may need renewal)."""
    if choice is None:
        return False
    if not choice.granted or policy.renewal_from is None:
        return True
    return (choice.policy_version or 0) >= policy.renewal_from


def is_allowed(
    purpose: str,
    *,
    policy: PolicyState,
    choices: Mapping[str, Choice],
    suppressed: bool,
    jurisdiction: str | None = None,
) -> bool:
    rule = policy.purposes.get(purpose)
    if rule is None:
        raise UnknownPurpose(purpose)
    if rule.required:
        return True
    if suppressed:
        return False
    choice = choices.get(purpose)
    if choice is not None and choice_counts(choice, policy):
        return choice.granted
    opt_out = rule.opt_out_jurisdictions
    return "*" in opt_out or (jurisdiction is not None and jurisdiction.upper() in opt_out)
