"""Who a consent question is about (pure: no Django imports)."""

from dataclasses import dataclass

MAX_ID_LENGTH = 128


class InvalidSubject(ValueError):
    pass


@dataclass(frozen=True)
class Subject:
    """A person as the platform knows them: an anonymous id (a browser), a user id (the shop's
    customer id), or both once they are linked."""

    user_id: str = ""
    anonymous_id: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "user_id", (self.user_id or "").strip())
        object.__setattr__(self, "anonymous_id", (self.anonymous_id or "").strip())
        if not self.user_id and not self.anonymous_id:
            raise InvalidSubject("a subject needs a userId or an anonymousId")
        if len(self.user_id) > MAX_ID_LENGTH or len(self.anonymous_id) > MAX_ID_LENGTH:
            raise InvalidSubject(f"ids are at most {MAX_ID_LENGTH} characters")


@dataclass(frozen=True)
class Identities:
    """Every id that belongs to one person: a user and the anonymous ids linked to them."""

    user_ids: frozenset[str]
    anonymous_ids: frozenset[str]
