"""Proof of delivery (§6): what a destination holds, named against the ledger and every publish."""

from __future__ import annotations

import pytest

from counts_assets.core.delivery.audit import FOREIGN, MISSING, MIXED, STALE, Found, audit_finding
from counts_assets.core.pairs.store import PairVersion

OLD = PairVersion("s1", "n1")
NEW = PairVersion("s2", "n2")
HISTORY = [NEW, OLD]


@pytest.mark.parametrize(
    ("found", "delivered", "expected"),
    [
        (Found("s2", "n2"), NEW, None),
        (Found(None, None), None, None),  # nothing delivered, nothing there
        (Found(None, None), NEW, MISSING),
        (Found("s2", None), NEW, MISSING),
        (Found("s1", "n1"), NEW, STALE),
        (Found("s2", "n1"), NEW, MIXED),
        (Found("s2", "zz"), NEW, FOREIGN),
        (Found("zz", None), NEW, FOREIGN),
        (Found("s1", "n1"), None, STALE),  # files where the ledger says there are none
    ],
)
def test_audit_finding(found, delivered, expected):
    assert audit_finding(found, delivered, HISTORY) == expected


def test_a_pair_published_twice_with_the_same_summary_is_stale_not_mixed():
    versions = [PairVersion("s", "n3"), PairVersion("s", "n2"), PairVersion("s", "n1")]
    assert audit_finding(Found("s", "n1"), versions[0], versions) == STALE
