"""The delivery rule (§6), on versions and destinations: what a delivery run does with a pair."""

from __future__ import annotations

import pytest

from counts_assets.core.delivery.plan import (
    DELIVERED,
    DIVERGED,
    NO_FILE,
    UNCHANGED,
    Action,
    LedgerEntry,
    Published,
    Refusal,
    next_action,
)
from counts_assets.core.pairs.store import PairVersion

V1 = PairVersion("a" * 64, "b" * 64)
V2 = PairVersion("c" * 64, "d" * 64)
HERE, THERE = "sftp://u@h:22/in/org", "file:///outbox/org"


def entry(storage_id, version=V1, destination=HERE, status=DELIVERED) -> LedgerEntry:
    return LedgerEntry(storage_id, status, version, destination)


@pytest.mark.parametrize(
    ("published", "delivered", "refusal", "expected"),
    [
        # never delivered, delivered elsewhere, or an older version: sent
        (Published(5, V1), None, None, Action.SEND),
        (Published(5, V1), entry(9, destination=THERE), None, Action.SEND),
        (Published(5, V2), entry(3), None, Action.SEND),
        # the order of records says nothing: a delivery recorded after a newer publish that
        # names the older version is still behind
        (Published(5, V2), entry(9, V1), None, Action.SEND),
        # the same bytes made again: recorded, not sent
        (Published(9, V1), entry(5), None, Action.RECORD_UNCHANGED),
        (Published(5, V1), entry(9, status=UNCHANGED), None, Action.NOTHING),
        # a period without a file is never sent; it is recorded once per destination
        (Published(5, None), None, None, Action.RECORD_NO_FILE),
        (Published(5, None), entry(3, V1), None, Action.RECORD_NO_FILE),
        (Published(5, None), entry(9, None, status=NO_FILE), None, Action.NOTHING),
        (Published(5, None), entry(9, None, THERE, NO_FILE), None, Action.RECORD_NO_FILE),
        (Published(9, V1), entry(5, None, status=NO_FILE), None, Action.SEND),
        # refused until published anew or the org file changes
        (Published(5, V1), None, Refusal(7, "org-v1"), Action.NOTHING),
        (Published(8, V1), None, Refusal(7, "org-v1"), Action.SEND),
        (Published(5, V1), None, Refusal(7, "org-v0"), Action.SEND),
        # the audit found the destination does not hold what the ledger says
        (Published(5, V1), entry(9, None, status=DIVERGED), None, Action.SEND),
        (None, None, None, Action.NOTHING),
    ],
)
def test_next_action(published, delivered, refusal, expected):
    assert next_action(published, delivered, refusal, HERE, "org-v1") is expected


def test_entries_the_sensor_takes_for_an_earlier_destination_are_brought_level():
    """The destination changed and changed back: the pair is where it belongs, but its entry is
    older than the change the sensor saw. It is recorded again, not sent, so the sensor is done."""
    delivered = entry(9)
    assert next_action(Published(5, V1), delivered, None, HERE, "o", destination_since=9) is (
        Action.RECORD_UNCHANGED
    )
    assert next_action(Published(5, V1), delivered, None, HERE, "o", destination_since=8) is (
        Action.NOTHING
    )
    assert next_action(Published(5, None), entry(9, None, status=NO_FILE), None, HERE, "o", 9) is (
        Action.RECORD_NO_FILE
    )


def test_a_period_without_a_file_found_diverged_is_recorded_again():
    diverged = entry(9, None, status=DIVERGED)
    assert next_action(Published(5, None), diverged, None, HERE, "o") is Action.RECORD_NO_FILE
