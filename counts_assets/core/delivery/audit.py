"""Proof of delivery, Dagster-free: what a destination holds for a pair, read back, against what the
ledger says was delivered there and every version ever published."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from counts_assets.core.pairs.store import PairVersion

MISSING = "missing"  # a file the ledger says was delivered is not there
STALE = "stale"  # both files are an older publish of the pair
MIXED = "mixed"  # File 1 and File 2 come from different publishes
FOREIGN = "foreign"  # a file whose bytes were never published


@dataclass(frozen=True)
class Found:
    """The SHA-256 of each file as read back from the destination; None where there is no file."""

    summary_sha256: str | None
    needs_sha256: str | None

    def holds(self, version: PairVersion | None) -> bool:
        if version is None:
            return self.summary_sha256 is None and self.needs_sha256 is None
        return (self.summary_sha256, self.needs_sha256) == (
            version.summary_sha256,
            version.needs_sha256,
        )


def audit_finding(
    found: Found, delivered: PairVersion | None, published: Iterable[PairVersion]
) -> str | None:
    """What is wrong at the destination, or None when it holds what the ledger says it was sent
    (`delivered`: None when the ledger says nothing is there, a period without a file).
    `published`: every version of the pair ever published, newest first."""
    if found.holds(delivered):
        return None
    versions = list(published)
    present = [
        (sha, known)
        for sha, known in (
            (found.summary_sha256, {v.summary_sha256 for v in versions}),
            (found.needs_sha256, {v.needs_sha256 for v in versions}),
        )
        if sha is not None
    ]
    if any(sha not in known for sha, known in present):
        return FOREIGN
    if len(present) < 2:
        return MISSING
    return STALE if any(found.holds(v) for v in versions) else MIXED
