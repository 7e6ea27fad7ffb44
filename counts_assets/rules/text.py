"""Text helpers shared by the rules."""

from __future__ import annotations

import pandas as pd


def as_text(values: pd.Series) -> pd.Series:
    """Object series of Python strings, None where missing (a SQL driver may hand back numbers)."""
    out = values.astype(object)
    present = out.notna()
    out = out.where(present, None)
    out[present] = out[present].map(str)
    return out


def matching_form(values: pd.Series) -> pd.Series:
    """`str.strip()` then `str.casefold()`, the contract's matching rule; None stays None."""
    text = as_text(values)
    present = text.notna()
    text[present] = text[present].map(lambda v: v.strip().casefold())
    return text
