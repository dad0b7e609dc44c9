"""What the per-source limits count (contract 7): an IPv4 address, or an IPv6 /64."""

from __future__ import annotations

import pytest

from idservice.auth.rate_limit import source_key


@pytest.mark.parametrize(("address", "key"), [
    ("203.0.113.7", "203.0.113.7"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),  # same /64: one source
    ("::ffff:203.0.113.7", "203.0.113.7"),
    (None, "unknown"),
    ("", "unknown"),
])
def test_ipv6_counts_per_64(address: str | None, key: str) -> None:
    assert source_key(address) == key
