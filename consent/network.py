"""IP addresses are truncated before anything is stored (pure: no Django imports)."""

import ipaddress
from functools import lru_cache
from typing import TypedDict

IPV4_PREFIX = 24
IPV6_PREFIX = 48


@lru_cache(maxsize=65_536)  # the collector sees each address many times; parsing one costs ~40 µs
def truncate_ip(address: str | None) -> str:
    """``203.0.113.77`` → ``203.0.113.0``; ``2001:db8:1234:5678::1`` → ``2001:db8:1234::``; junk → ``""``."""
    if not address:
        return ""
    try:
        parsed = ipaddress.ip_address(address.strip())
    except ValueError:
        return ""
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    prefix = IPV4_PREFIX if parsed.version == 4 else IPV6_PREFIX
    return str(ipaddress.ip_network(f"{parsed}/{prefix}", strict=False).network_address)


def client_ip(meta: dict[str, str] | object, trusted_proxies: int) -> str:
    """The client's address from a WSGI ``META``: the socket's, or with ``trusted_proxies`` proxies in
    front, the address those proxies saw (counted from the right of X-Forwarded-For, since entries
    on the left are whatever the client chose to send)."""
    values = meta if isinstance(meta, dict) else {}
    if trusted_proxies > 0:
        forwarded = [part.strip() for part in values.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= trusted_proxies:
            return forwarded[-trusted_proxies]
    return str(values.get("REMOTE_ADDR", ""))


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
