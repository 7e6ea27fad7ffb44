"""Text helpers shared by the core: values as text, as a report shows them, and the form they
are matched in."""

from __future__ import annotations

import pandas as pd

SHOWN_CHARACTERS = 40


def shown(value: object) -> str:
    """A source value as a report may show it: at most 40 characters, then `…`."""
    text = str(value)
    return text if len(text) <= SHOWN_CHARACTERS else text[:SHOWN_CHARACTERS] + "…"


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
