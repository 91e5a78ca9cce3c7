"""A client's address as the platform keeps it: the socket's or the trusted proxies', truncated
before anything is stored (pure: no Django imports). Every part of the platform that counts or
records an address (the collector, consent records, the admin's login throttling) uses these."""

import ipaddress
from functools import lru_cache

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
