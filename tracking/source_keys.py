"""A source's keys, and the userToken derived from its secret key (pure: no Django).

The write key (``pzw_…``) is public; the secret key (``pzs_…``) is for the shop's servers and is
stored only as its digest. The userToken proves that a browser may act in a user's name:
HMAC-SHA256 of the user id, keyed with the hex SHA-256 digest of the source's secret key. The
shop's server computes it (it knows the secret key) and puts it in the signed-in customer's page;
a browser cannot forge it for another customer.
"""

import hashlib
import hmac
from collections.abc import Iterable

WRITE_KEY_PREFIX = "pzw_"
SECRET_KEY_PREFIX = "pzs_"  # noqa: S105 (a prefix that marks secret keys, not a secret)


def secret_key_digest(secret_key: str) -> str:
    """SHA-256 is enough here: the keys are 256-bit random, so there is nothing to brute-force."""
    return hashlib.sha256(secret_key.encode()).hexdigest()


def user_token_for(secret_key_digest: str, user_id: str) -> str:
    return hmac.new(secret_key_digest.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def user_token_matches(secret_key_digest: str, user_id: str, token: object) -> bool:
    if not isinstance(token, str) or not token or not user_id:
        return False
    # As bytes: compare_digest refuses str with non-ASCII characters, which any token may hold.
    return hmac.compare_digest(user_token_for(secret_key_digest, user_id).encode(), token.encode())


def origin_allowed(origin: str | None, allowed_origins: Iterable[str], own_origin: str) -> bool:
    """Whether a request may act with a source's write key from this browser origin: one the source
    lists, or the platform's own pages. A request with no Origin is not a browser's (a server)."""
    return not origin or origin == own_origin or origin in allowed_origins
