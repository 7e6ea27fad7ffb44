"""What a data manager reads in the UI. Counts, codes, record numbers, file facts: never names,
phone numbers, notes or other free text from the store."""

from __future__ import annotations

import pandas as pd

MAX_LISTED = 50


def markdown_table(frame: pd.DataFrame, limit: int = MAX_LISTED) -> str:
    if frame.empty:
        return "_none_"
    shown = frame.head(limit).astype(object).map(lambda v: "" if pd.isna(v) else str(v))
    lines = [
        "| " + " | ".join(shown.columns) + " |",
        "|" + "---|" * len(shown.columns),
        *("| " + " | ".join(v.replace("|", "\\|") for v in row) + " |" for row in shown.values),
    ]
    if len(frame) > limit:
        lines.append(f"\n_{len(frame) - limit} more rows not shown_")
    return "\n".join(lines)
