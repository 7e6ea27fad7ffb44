"""Zip Code rule: first 5 digits of `NNNNN`, `NNNNN-NNNN` or `NNNNNNNNN`, else empty."""

from __future__ import annotations

import pandas as pd

from counts_assets.core.text import as_text

ZIP_FORMS = r"[0-9]{5}(?:-[0-9]{4}|[0-9]{4})?"


def normalize_zip(postal_codes: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(zip, invalid): zip is the 5-digit text or ""; invalid marks stored values that are
    present but not one of the three forms (a missing value is not a finding)."""
    text = as_text(postal_codes)
    stripped = text.fillna("").map(str.strip)
    valid = stripped.str.fullmatch(ZIP_FORMS).astype(bool)
    zips = stripped.str[:5].where(valid, "").astype(object)
    invalid = ~valid & (stripped != "")
    return zips, invalid
