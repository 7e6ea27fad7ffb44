"""What a data manager reads in the UI. Counts, codes, record numbers, file facts: never names,
phone numbers, notes or other free text from the store."""

from __future__ import annotations

import pandas as pd

MAX_LISTED = 50


def markdown_table(frame: pd.DataFrame, limit: int = MAX_LISTED) -> str:
    if frame.empty:
        return "_none_"
    # Cell by cell in plain Python: an export run writes one of these per file it publishes,
    # and pandas' elementwise machinery costs more than the table on frames this small.
    rows = frame.head(limit).to_numpy(dtype=object).tolist()
    lines = [
        "| " + " | ".join(map(str, frame.columns)) + " |",
        "|" + "---|" * len(frame.columns),
        *("| " + " | ".join(_cell(v) for v in row) + " |" for row in rows),
    ]
    if len(frame) > limit:
        lines.append(f"\n_{len(frame) - limit} more rows not shown_")
    return "\n".join(lines)


def _cell(value: object) -> str:
    return "" if pd.isna(value) else str(value).replace("|", "\\|")
