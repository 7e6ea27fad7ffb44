"""One export run, Dagster-free: build every file, validate them all at once, then publish the
pairs that pass, each under its lock, in batches the caller records together. The assets call
this; tests call it directly."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from counts_assets.core.exports.build import Findings, build_export_frames
from counts_assets.core.files.csv_format import csv_lines, header_line
from counts_assets.core.files.layout import FILE_KEY, NEEDS_HEADER, SUMMARY_HEADER
from counts_assets.core.files.periods import Target, targets_frame
from counts_assets.core.orgs.models import Organization
from counts_assets.core.pairs.store import PairStore, PublishedFile, disk_failure
from counts_assets.core.source.tables import SourceTables
from counts_assets.core.validation.gate import validate_run

HEADERS = {"summary": SUMMARY_HEADER, "needs": NEEDS_HEADER}
HEADER_LINES = {kind: header_line(columns) for kind, columns in HEADERS.items()}


@dataclass
class FileOutcome:
    """What happened to one (org, period) pair."""

    target: Target
    published: list[PublishedFile] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    included_records: int = 0
    total_services: int = 0
    total_needs: int = 0
    rows: dict[str, pd.DataFrame] = field(default_factory=dict)  # kind -> the file's rows
    contents: dict[str, tuple[bytes, int]] = field(default_factory=dict)  # kind -> bytes, rows
    retryable: bool = False  # failed for a reason that may pass (a full disk, an I/O error)

    def release(self) -> None:
        """Drops the file's rows and bytes once its record is made, so a long run holds only
        counts."""
        self.rows, self.contents = {}, {}


@dataclass
class RunOutcome:
    findings: Findings
    files: dict[tuple[str, str], FileOutcome]

    @classmethod
    def combine(cls, parts: list[RunOutcome]) -> RunOutcome:
        """One run's outcome from its batches (one per organization)."""
        if not parts:
            return cls(Findings.concat([]), {})
        files = {key: f for part in parts for key, f in part.files.items()}
        return cls(Findings.concat([p.findings for p in parts]), files)

    @property
    def failed(self) -> dict[tuple[str, str], list[str]]:
        return {key: f.failures for key, f in self.files.items() if f.failures}


def by_file(frame: pd.DataFrame) -> dict[tuple[str, str], slice]:
    """Row positions of each (org_id, period) in a frame sorted by file (as `sort_rows` leaves
    it): contiguous runs, found in one vectorised pass."""
    if frame.empty:
        return {}
    keys = frame["org_id"].astype(str) + "\x1f" + frame["period"].astype(str)
    starts = np.flatnonzero(np.r_[True, keys.to_numpy()[1:] != keys.to_numpy()[:-1]])
    ends = np.r_[starts[1:], len(frame)]
    return {
        (frame["org_id"].iat[a], frame["period"].iat[a]): slice(a, b)
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True)
    }


def _file_bodies(frame: pd.DataFrame, kind: str) -> dict[tuple[str, str], tuple[str, int]]:
    """(text, data rows) per (org_id, period); lines formatted in one vectorised pass, then
    joined file by file (a loop over files, not records)."""
    lines = csv_lines(frame, HEADERS[kind]).tolist()
    return {
        key: ("".join(lines[rows]), rows.stop - rows.start) for key, rows in by_file(frame).items()
    }


def build_run(
    source: SourceTables, orgs: Mapping[str, Organization], targets: list[Target]
) -> RunOutcome:
    """Every file of the run built, formatted and validated; nothing written yet."""
    monthly = bool(targets) and targets[0].monthly
    frame_of_targets = targets_frame(targets)
    frames = build_export_frames(source, orgs, frame_of_targets, monthly)
    report = validate_run(frames.summary, frames.needs, frame_of_targets)

    bodies = {kind: _file_bodies(getattr(frames, kind), kind) for kind in HEADERS}
    # Rows kept for the UI: the summary's preview, and for a month both files (reconciliation).
    kept = ("summary", "needs") if monthly else ("summary",)
    positions = {kind: by_file(getattr(frames, kind)) for kind in kept}
    included = frames.included.groupby(FILE_KEY).agg(
        records=("call_report_num", "size"), services=("referrals", "sum")
    )
    needs_count = (
        pd.to_numeric(frames.needs["Count"])
        .groupby([frames.needs["org_id"], frames.needs["period"]])
        .sum()
    )

    files: dict[tuple[str, str], FileOutcome] = {}
    for target in targets:
        key = (target.org_id, target.period)
        outcome = files[key] = FileOutcome(target)
        outcome.failures.extend(report.failures.get(key, []))
        if outcome.failures:
            continue
        if key in included.index:
            outcome.included_records = int(included.loc[key, "records"])
            outcome.total_services = int(included.loc[key, "services"])
            outcome.total_needs = int(needs_count.get(key, 0))
        outcome.rows = {
            kind: getattr(frames, kind).iloc[positions[kind].get(key, slice(0, 0))] for kind in kept
        }
        for kind, texts in bodies.items():
            text, rows = texts.get(key, ("", 0))
            outcome.contents[kind] = ((HEADER_LINES[kind] + text).encode("utf-8"), rows)
    return RunOutcome(findings=frames.findings, files=files)


# Pairs published before their records are written together: one write to the instance per
# batch instead of one per pair. Their locks are held until then, so nobody looks at a pair
# whose record is not written yet.
PAIRS_PER_RECORD_BATCH = 100


def publish_pairs(
    outcome: RunOutcome, store: PairStore, per_batch: int = PAIRS_PER_RECORD_BATCH
) -> Iterator[list[FileOutcome]]:
    """Publishes the valid pairs, each under its lock, and yields them in batches while their
    locks are held, so the caller records a batch before anyone else looks at its pairs; their
    journals go and their locks are released once the caller resumes. A pair that cannot be
    written (full disk, a folder at a file path) fails alone, naming the path and what
    happened. Locks are taken in (org, period) order, so two runs holding batches never wait
    on each other in a circle; a lock not free within the store's bound fails that pair alone,
    naming its holder."""
    pending = [(key, f) for key, f in sorted(outcome.files.items()) if not f.failures]
    for start in range(0, len(pending), per_batch):
        with contextlib.ExitStack() as held:
            batch, handles = [], []
            for (org_id, period), result in pending[start : start + per_batch]:
                try:
                    pair = held.enter_context(store.locked(org_id, period))
                    result.published = pair.publish(result.contents)
                except OSError as exc:
                    failure = disk_failure(exc)
                    result.failures.append(
                        f"{failure.path}: not published, {failure.reason}; the previous pair stays"
                    )
                    result.retryable = failure.may_pass
                    continue
                batch.append(result)
                handles.append(pair)
            if batch:
                yield batch
            for pair in handles:
                pair.drop_journal()
