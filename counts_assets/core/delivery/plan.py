"""What a delivery run does with each pair, decided from versions, never from the order in which
records were written: the newest published version of the pair against the version last
delivered to the current destination. Dagster-free, so the rules are tested directly."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

from counts_assets.core.orgs.models import Organization
from counts_assets.core.pairs.store import PairVersion

# Ledger entries (materializations of `daily_delivery` / `monthly_delivery`).
DELIVERED = "delivered"  # sent by the delivery run
REDELIVERED = "redelivered"  # sent again on an operator's request
UNCHANGED = "unchanged"  # made again with the same bytes: the recipient already holds them
NO_FILE = "no_file"  # the period made no file: nothing to deliver
DIVERGED = (
    "diverged"  # the audit found the destination does not hold what was delivered (repair on)
)
# Observation on a ledger partition: the pair on disk is not the pair published, or fails
# validation; it is not sent until published anew or its organization file changes.
REFUSED = "refused"


@dataclass(frozen=True)
class Published:
    """The newest record of a pair's partition: a version, or None when it made no file."""

    storage_id: int
    version: PairVersion | None


@dataclass(frozen=True)
class LedgerEntry:
    """The newest ledger entry of a pair: what the destination holds, as far as the ledger knows."""

    storage_id: int
    status: str
    version: PairVersion | None
    destination: str
    delivered_at: str = ""


@dataclass(frozen=True)
class Refusal:
    """The newest refusal of a pair, and the organization file it was refused under."""

    storage_id: int
    org_file: str


class Action(enum.Enum):
    SEND = "send"
    RECORD_UNCHANGED = "record unchanged"
    RECORD_NO_FILE = "record no file"
    NOTHING = "nothing"


def next_action(
    published: Published | None,
    delivered: LedgerEntry | None,
    refusal: Refusal | None,
    destination: str,
    org_file: str,
    destination_since: int = 0,
) -> Action:
    """The one rule: a published pair is pending when the version last delivered to the current
    destination is not its newest version (or the destination was found not to hold it).
    Entries that send nothing (`unchanged`, `no_file`) keep the ledger level with what the
    sensor compares: the newest publish, and `destination_since`, the storage id up to which
    the sensor takes entries to be about an earlier destination (it finds work cheaply, from
    storage ids)."""
    if published is None:
        return Action.NOTHING
    behind = (
        delivered is None
        or delivered.storage_id < published.storage_id
        or delivered.storage_id <= destination_since
        or delivered.status == DIVERGED
    )
    if published.version is None:
        if behind or delivered.destination != destination:
            return Action.RECORD_NO_FILE
        return Action.NOTHING
    if (
        refusal is not None
        and refusal.storage_id > published.storage_id
        and refusal.org_file == org_file
    ):
        return Action.NOTHING  # refused until published anew or its org file changes
    if (
        delivered is None
        or delivered.status == DIVERGED
        or delivered.destination != destination
        or delivered.version != published.version
    ):
        return Action.SEND
    return Action.RECORD_UNCHANGED if behind else Action.NOTHING


def org_fingerprint(org: Organization) -> str:
    """Changes whenever the organization file's settings change: a refusal is void then."""
    return hashlib.sha256(org.model_dump_json().encode()).hexdigest()[:16]
