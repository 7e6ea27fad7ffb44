"""Writes a validated file pair under temporary names, then renames both into place, so a
reader never sees half a file and a failed pair leaves the previous one untouched."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from counts_assets.exports.layout import file_path


@dataclass(frozen=True)
class PublishedFile:
    kind: str
    path: Path
    size: int
    sha256: str
    rows: int


def _write_temp(final: Path, content: bytes) -> Path:
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = final.with_name(f".{final.name}.{os.getpid()}.part")
    with open(temp, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    return temp


def publish_pair(
    export_dir: Path, org_id: str, period: str, contents: dict[str, tuple[bytes, int]]
) -> list[PublishedFile]:
    """Publish {kind: (bytes, data rows)} for one (org, period): all written, then renamed."""
    staged: list[tuple[Path, Path, str, bytes, int]] = []
    try:
        for kind, (content, rows) in contents.items():
            final = file_path(export_dir, org_id, period, kind)
            staged.append((_write_temp(final, content), final, kind, content, rows))
    except OSError:
        for temp, *_ in staged:
            temp.unlink(missing_ok=True)
        raise
    published = []
    for temp, final, kind, content, rows in staged:
        os.replace(temp, final)
        published.append(
            PublishedFile(
                kind=kind,
                path=final,
                size=len(content),
                sha256=hashlib.sha256(content).hexdigest(),
                rows=rows,
            )
        )
    return published
