"""The pure parts of consent: decisions, IP truncation, request facts (no database)."""

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.client_address import client_ip, truncate_ip
from consent.decisions import Choice, PolicyState, PurposeRule, UnknownPurpose, is_allowed, merge_choices
from consent.network import gpc_signal
from consent.subjects import InvalidSubject, Subject

POLICY = PolicyState(
    version=3,
    renewal_from=2,
    purposes={
        "necessary": PurposeRule(required=True, opt_out_jurisdictions=()),
        "analytics": PurposeRule(required=False, opt_out_jurisdictions=("US",)),
        "marketing": PurposeRule(required=False, opt_out_jurisdictions=()),
        "everywhere": PurposeRule(required=False, opt_out_jurisdictions=("*",)),
    },
)


def choice(granted: bool, at: str = "2026-01-01T00:00:00+00:00", version: int | None = 3, gpc: bool = False) -> Choice:
    return Choice(granted, at, version, "banner", gpc)


@pytest.mark.parametrize(
    ("purpose", "choices", "suppressed", "jurisdiction", "allowed"),
    [
        ("necessary", {}, True, None, True),  # required: always
        ("marketing", {}, False, None, False),  # opt-in by default
        ("marketing", {"marketing": choice(True)}, False, None, True),
        ("marketing", {"marketing": choice(False)}, False, None, False),
        ("marketing", {"marketing": choice(True)}, True, None, False),  # erased
        ("marketing", {"marketing": choice(True, version=1)}, False, None, False),  # grant before a renewal
        ("marketing", {"marketing": choice(True, version=2)}, False, None, True),  # grant at the renewal
        ("marketing", {"marketing": choice(False, version=1)}, False, None, False),  # withdrawals always stand
        ("analytics", {}, False, "US", True),  # opt-out jurisdiction
        ("analytics", {}, False, "us", True),
        ("analytics", {}, False, "DE", False),
        ("analytics", {}, False, None, False),  # unknown jurisdiction: opt-in
        ("analytics", {"analytics": choice(False)}, False, "US", False),
        ("analytics", {"analytics": choice(True, version=1)}, False, "US", True),  # stale grant: default (opt-out)
        ("everywhere", {}, False, None, True),
    ],
)
def test_decisions(
    purpose: str, choices: dict[str, Choice], suppressed: bool, jurisdiction: str | None, allowed: bool
) -> None:
    assert (
        is_allowed(purpose, policy=POLICY, choices=choices, suppressed=suppressed, jurisdiction=jurisdiction) is allowed
    )


def test_unknown_purpose_is_a_programming_error() -> None:
    with pytest.raises(UnknownPurpose):
        is_allowed("profiling", policy=POLICY, choices={}, suppressed=False)


def test_merge_keeps_the_most_recent_choice_per_purpose() -> None:
    early, late = "2026-01-01T00:00:00+00:00", "2026-02-01T00:00:00+00:00"
    merged = merge_choices(
        {"marketing": choice(True, early), "analytics": choice(True, late)}, {"marketing": choice(False, late)}
    )
    assert merged == {"marketing": choice(False, late), "analytics": choice(True, late)}


@pytest.mark.parametrize(
    ("address", "truncated"),
    [
        ("203.0.113.77", "203.0.113.0"),
        ("10.1.2.255", "10.1.2.0"),
        ("2001:db8:1234:5678:9abc::1", "2001:db8:1234::"),
        ("::ffff:198.51.100.9", "198.51.100.0"),
        ("not an address", ""),
        ("", ""),
        (None, ""),
    ],
)
def test_ip_truncation(address: str | None, truncated: str) -> None:
    assert truncate_ip(address) == truncated


@given(st.ip_addresses())
def test_truncation_keeps_only_the_network(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    result = ipaddress.ip_address(truncate_ip(str(address)))
    if address.version == 6 and address.ipv4_mapped is None:
        assert result in ipaddress.ip_network(f"{address}/48", strict=False)
        assert int(result) & ((1 << 80) - 1) == 0
    else:
        source = address.ipv4_mapped if address.version == 6 and address.ipv4_mapped else address
        assert result in ipaddress.ip_network(f"{source}/24", strict=False)
        assert int(result) & 0xFF == 0


def test_client_ip_trusts_only_the_configured_proxies() -> None:
    meta = {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 203.0.113.9"}
    assert client_ip(meta, 0) == "10.0.0.1"
    assert client_ip(meta, 1) == "203.0.113.9"  # the spoofable left entry is ignored
    assert client_ip({"REMOTE_ADDR": "10.0.0.1"}, 1) == "10.0.0.1"


def test_gpc_header() -> None:
    assert gpc_signal({"HTTP_SEC_GPC": "1"}) is True
    assert gpc_signal({"HTTP_SEC_GPC": "0"}) is False
    assert gpc_signal({}) is False


def test_a_subject_needs_an_id() -> None:
    with pytest.raises(InvalidSubject):
        Subject()
    with pytest.raises(InvalidSubject):
        Subject(user_id="  ")
    assert Subject(user_id=" 17850 ").user_id == "17850"
