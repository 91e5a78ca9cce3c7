"""What a request says about consent and where it came from (pure: no Django imports). Addresses
are truncated before anything is stored (``config.client_address``)."""

from typing import TypedDict

from config.client_address import client_ip


def gpc_signal(meta: dict[str, str] | object) -> bool:
    """Whether the request carries the Global Privacy Control header ``Sec-GPC: 1``."""
    return isinstance(meta, dict) and meta.get("HTTP_SEC_GPC", "").strip() == "1"


class RequestFacts(TypedDict):
    ip_address: str
    user_agent: str


def request_facts(meta: dict[str, str] | object, trusted_proxies: int) -> RequestFacts:
    """What a consent record keeps about the request it came with: the client's address (truncated
    later, by the service) and the user agent."""
    values = meta if isinstance(meta, dict) else {}
    return RequestFacts(
        ip_address=client_ip(values, trusted_proxies), user_agent=str(values.get("HTTP_USER_AGENT", ""))
    )
