"""211 HSIS / AIRS taxonomy code rule."""

from __future__ import annotations

import pandas as pd

from counts_assets.core.text import as_text

TERM = r"[A-Z](?:[A-Z](?:-[0-9]{4}(?:\.[0-9]{4}(?:-[0-9]{3}(?:\.[0-9]{2})?)?)?)?)?"
CODE = rf"{TERM}(?: \* {TERM})*"


def normalize_codes(codes: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(code, valid): the stored code stripped and upper-cased, and whether the whole of it is
    one term or terms joined by exactly ' * '. NULL is never valid."""
    text = as_text(codes)
    present = text.notna()
    normalized = text.copy()
    normalized[present] = text[present].map(lambda v: v.strip().upper())
    valid = present & normalized.fillna("").str.fullmatch(CODE).astype(bool)
    return normalized, valid
