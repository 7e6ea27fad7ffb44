"""Source values as they are read: control characters removed and counted, and records with an
undecodable value or no usable record number left out, reported without the value itself."""

from __future__ import annotations

import pandas as pd

from counts_assets.core.source.tables import (
    ANSWER_COLUMNS,
    NEED_COLUMNS,
    RECORD_COLUMNS,
    SourceTables,
)

# C0 control characters other than tab, LF and CR.
CONTROL_CHARACTERS = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"
# What the reader makes of bytes that are not UTF-8 (surrogateescape).
UNDECODABLE = "[\udc80-\udcff]"
SUSPICIOUS = "[\x00-\x08\x0b\x0c\x0e-\x1f\udc80-\udcff]"
RECORD_KEY = ["org_id", "call_report_num"]
LEFT_OUT_COLUMNS = ["org_id", "call_report_num", "column"]
# The values of each table that are read: an undecodable one leaves its record out.
READ_VALUES = {
    "records": [c for c in RECORD_COLUMNS if c != "org_id"],
    "answers": [c for c in ANSWER_COLUMNS if c not in RECORD_KEY],
    "needs": [c for c in NEED_COLUMNS if c not in RECORD_KEY],
}


# What pandas calls a column that cannot hold bytes: the common case, checked in one pass.
_WITHOUT_BYTES = {
    "string",
    "empty",
    "integer",
    "floating",
    "mixed-integer-float",
    "boolean",
    "decimal",
    "datetime",
    "datetime64",
    "date",
    "time",
}


def _as_text_if_bytes(value: object) -> object:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="surrogateescape")
    return value


def as_read_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Bytes (a BLOB, a bytea) read as text: valid UTF-8 becomes its text, and bytes that are
    not keep them as lone surrogates, so the record is left out and reported like any value
    that cannot be decoded. Columns holding only text, numbers or NULL are left as they are."""
    for column in frame.columns:
        if pd.api.types.infer_dtype(frame[column], skipna=True) not in _WITHOUT_BYTES:
            frame[column] = frame[column].map(_as_text_if_bytes)
    return frame


def _contains(values: pd.Series, pattern: str) -> pd.Series:
    """Which text cells match; other cells (numbers, dates, NULL) never do."""
    try:
        found = values.str.contains(pattern, regex=True, na=False)
    except AttributeError:  # no text in the column at all
        return pd.Series(False, index=values.index)
    return found.astype(bool)


def is_undecodable(values: pd.Series) -> pd.Series:
    return _contains(values, UNDECODABLE)


def without_control_characters(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(values with C0 control characters removed, which values changed)."""
    changed = _contains(values, CONTROL_CHARACTERS)
    if not changed.any():
        return values, changed
    return _removed(values, changed), changed


def _removed(values: pd.Series, changed: pd.Series) -> pd.Series:
    cleaned = values.copy()
    cleaned[changed] = values[changed].str.replace(CONTROL_CHARACTERS, "", regex=True)
    return cleaned


def _left_out(rows: pd.DataFrame, column: str) -> pd.DataFrame:
    return rows[RECORD_KEY].assign(column=column)


def clean_source(tables: SourceTables) -> tuple[SourceTables, pd.DataFrame, pd.DataFrame]:
    """(tables, left_out, control_characters).

    left_out: org_id, call_report_num (None when the number itself is unusable: counted, not
    named), column (which value and why). control_characters: org_id, values (how many values
    had control characters removed).
    """
    frames = {name: getattr(tables, name).copy() for name in ("records", "answers", "needs")}
    frames["referrals"] = tables.referrals
    left_out: list[pd.DataFrame] = []
    cleaned_per_org: list[pd.Series] = []
    for name, columns in READ_VALUES.items():
        frame = frames[name]
        bad = pd.Series(False, index=frame.index)
        for column in ["call_report_num", *columns] if name != "records" else columns:
            suspicious = _contains(frame[column], SUSPICIOUS)
            if not suspicious.any():
                continue
            undecodable = suspicious & is_undecodable(frame[column].where(suspicious))
            if undecodable.any():
                named = frame[undecodable & ~bad]
                if column == "call_report_num":
                    named = named.assign(call_report_num=None)
                if name == "records" or column != "call_report_num":
                    left_out.append(_left_out(named, f"{column} (not readable text)"))
                bad |= undecodable
            changed = suspicious & _contains(frame[column].where(suspicious), CONTROL_CHARACTERS)
            if changed.any():
                frame[column] = _removed(frame[column], changed)
                cleaned_per_org.append(frame.loc[changed, "org_id"])
        if name == "records":
            number = frame["call_report_num"]
            empty = ~bad & (number.isna() | number.astype(str).str.strip().eq(""))
            left_out.append(
                _left_out(frame[empty].assign(call_report_num=None), "call_report_num (empty)")
            )
            bad |= empty
        frames[name] = frame[~bad]

    left = (
        pd.concat(left_out, ignore_index=True)
        if left_out
        else pd.DataFrame(columns=LEFT_OUT_COLUMNS)
    )
    named = left.dropna(subset=["call_report_num"])[RECORD_KEY].drop_duplicates()
    if not named.empty:
        for name in ("records", "answers", "needs", "referrals"):
            frame = frames[name]
            keep = frame.merge(named.assign(_out=True), on=RECORD_KEY, how="left")["_out"].isna()
            frames[name] = frame[keep.to_numpy()]
    # A record reported through its answers or needs is reported once, by its first reason.
    left = pd.concat(
        [
            left[left["call_report_num"].isna()],
            left.dropna(subset=["call_report_num"]).drop_duplicates(RECORD_KEY),
        ],
        ignore_index=True,
    )
    cleaned = (
        pd.concat(cleaned_per_org, ignore_index=True)
        if cleaned_per_org
        else pd.Series([], dtype=object)
    )
    control = cleaned.value_counts().rename_axis("org_id").rename("values").reset_index()
    return (
        SourceTables(**{n: f.reset_index(drop=True) for n, f in frames.items()}),
        left[LEFT_OUT_COLUMNS],
        control,
    )
