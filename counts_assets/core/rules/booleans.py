"""Boolean columns of the source: native, or 1/0, true/false, t/f in any case."""

from __future__ import annotations

import pandas as pd

_WORDS = {"1": True, "0": False, "true": True, "false": False, "t": True, "f": False}


def parse_flags(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(flag, unreadable): flag is True/False with NULL as False; unreadable marks values that
    are present but none of the accepted forms (their flag is False too)."""

    def read(value: object) -> bool | None:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return False
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value)
        return _WORDS.get(str(value).strip().lower())

    parsed = values.astype(object).map(read)
    unreadable = parsed.isna()
    return parsed.where(~unreadable, False).astype(bool), unreadable
