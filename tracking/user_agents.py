"""What a user-agent string says: browser, operating system, kind of device, bot (pure)."""

from dataclasses import dataclass
from functools import lru_cache

from user_agents import parse


@dataclass(frozen=True)
class Agent:
    browser: str
    os: str
    device: str  # "mobile", "tablet", "desktop", "bot" or "other"
    is_bot: bool

    def as_dict(self) -> dict[str, str]:
        return {"browser": self.browser, "os": self.os, "device": self.device}


@lru_cache(maxsize=8192)
def describe_user_agent(user_agent: str) -> Agent:
    """Parsing takes ~1 ms, and a shop sees few distinct strings: each is parsed once per process."""
    if not user_agent:
        return Agent("", "", "other", False)
    parsed = parse(user_agent[:1024])
    if parsed.is_bot:
        device = "bot"
    elif parsed.is_mobile:
        device = "mobile"
    elif parsed.is_tablet:
        device = "tablet"
    elif parsed.is_pc:
        device = "desktop"
    else:
        device = "other"
    return Agent(parsed.browser.family, parsed.os.family, device, parsed.is_bot)
