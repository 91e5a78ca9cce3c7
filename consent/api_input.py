"""Bodies of the consent and privacy APIs (pure: pydantic, no Django)."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

Id = Annotated[str, StringConstraints(strip_whitespace=True, max_length=128)]


class SubjectIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    anonymous_id: Id = Field(default="", alias="anonymousId")
    user_id: Id = Field(default="", alias="userId")

    @model_validator(mode="after")
    def _needs_an_id(self) -> "SubjectIn":
        if not self.anonymous_id and not self.user_id:
            raise ValueError("give a userId or an anonymousId")
        return self


class BrowserSubjectIn(SubjectIn):
    """A subject named by a browser: a ``userId`` counts only with its ``userToken``."""

    write_key: str | None = Field(default=None, alias="writeKey", description="Or HTTP Basic; never a secret key.")
    user_token: str = Field(
        default="",
        alias="userToken",
        max_length=128,
        description="With the write key and a userId: the user's token, computed by the shop's server.",
    )


class ChoicesIn(BrowserSubjectIn):
    """Choices of a person, e.g. from the banner: ``{"choices": {"analytics": true, "marketing": false}}``."""

    choices: Annotated[dict[Annotated[str, StringConstraints(max_length=32)], bool], Field(min_length=1, max_length=20)]
    source: str = Field(default="banner", description="banner, preference_center, api or import.")
    policy_version: int | None = Field(
        default=None, alias="policyVersion", description="The version shown to the person; default: the current one."
    )
    gpc: bool = Field(default=False, description="Whether the browser sent a Global Privacy Control signal.")


class GpcIn(BrowserSubjectIn):
    pass


class LinkIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    anonymous_id: Annotated[Id, StringConstraints(min_length=1)] = Field(alias="anonymousId")
    user_id: Annotated[Id, StringConstraints(min_length=1)] = Field(alias="userId")


class PreferenceLinkIn(SubjectIn):
    expires_in: int | None = Field(
        default=None, alias="expiresIn", ge=300, le=90 * 24 * 3600, description="Seconds; default 30 days."
    )
