"""CSV text exactly as the file format asks: UTF-8, comma separated, `\\n` after every row, a
field quoted when, and only when, it holds `,` `"` `\\r` or `\\n`."""

from __future__ import annotations

import pandas as pd

_NEEDS_QUOTES = r'[,"\r\n]'


def quote_fields(column: pd.Series) -> pd.Series:
    text = column.astype(object).fillna("").map(str)
    quoted = '"' + text.str.replace('"', '""', regex=False) + '"'
    return quoted.where(text.str.contains(_NEEDS_QUOTES, regex=True), text)


def csv_lines(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """One formatted line (with its `\\n`) per row, vectorised over the whole frame."""
    if frame.empty:
        return pd.Series([], index=frame.index, dtype=object)
    quoted = [quote_fields(frame[c]) for c in columns]
    line = quoted[0]
    for part in quoted[1:]:
        line = line + "," + part
    return line + "\n"


def header_line(columns: list[str]) -> str:
    return ",".join(quote_fields(pd.Series(columns)).tolist()) + "\n"
