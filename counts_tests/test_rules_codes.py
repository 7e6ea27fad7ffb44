"""Taxonomy codes, zip codes and booleans (§2, §4)."""

from __future__ import annotations

import pandas as pd
import pytest

from counts_assets.core.rules.booleans import parse_flags
from counts_assets.core.rules.taxonomy import normalize_codes
from counts_assets.core.rules.zip_codes import normalize_zip


def _code(value):
    codes, valid = normalize_codes(pd.Series([value], dtype=object))
    return codes.iloc[0], bool(valid.iloc[0])


@pytest.mark.parametrize(
    ("stored", "normalised"),
    [
        ("B", "B"),
        ("BD", "BD"),
        ("BD-1800", "BD-1800"),
        ("BD-1800.2000", "BD-1800.2000"),
        ("BD-1800.2000-620", "BD-1800.2000-620"),
        ("RP-1400.8000-020.15", "RP-1400.8000-020.15"),
        ("  bd-1800.2000 ", "BD-1800.2000"),
        ("BH-1800.8500 * YB-8000", "BH-1800.8500 * YB-8000"),
        ("bh-1800.8500 * yb-8000 * yk", "BH-1800.8500 * YB-8000 * YK"),
    ],
)
def test_valid_codes(stored, normalised):
    assert _code(stored) == (normalised, True)


@pytest.mark.parametrize(
    "stored",
    [
        None,
        "",
        "   ",
        "BD1800",
        "BD-180",
        "BD-1800.200",
        "BD-1800.2000-62",
        "RP-1400.8000-020.1",
        "RP-1400.8000-020.15.1",
        "BDX",
        "1D",
        "BH-1800.8500 *YB-8000",
        "BH-1800.8500  * YB-8000",
        "BH-1800.8500 * ",
        "* YB-8000",
        "BD-１８００",
        "BD-1800\nBD",
    ],
)
def test_invalid_codes(stored):
    assert _code(stored)[1] is False


@pytest.mark.parametrize(
    ("stored", "zip_code", "invalid"),
    [
        ("02134", "02134", False),
        (" 60601-1234 ", "60601", False),
        ("606011234", "60601", False),
        ("6060", "", True),
        ("60601-123", "", True),
        ("60601 1234", "", True),
        ("6060112345", "", True),
        ("N/A", "", True),
        ("６０６０１", "", True),
        (None, "", False),
        ("", "", False),
    ],
)
def test_zip_codes(stored, zip_code, invalid):
    zips, bad = normalize_zip(pd.Series([stored], dtype=object))
    assert (zips.iloc[0], bool(bad.iloc[0])) == (zip_code, invalid)


@pytest.mark.parametrize(
    ("stored", "flag", "unreadable"),
    [
        (True, True, False),
        (False, False, False),
        (1, True, False),
        (0, False, False),
        ("1", True, False),
        ("0", False, False),
        ("TRUE", True, False),
        ("false", False, False),
        ("t", True, False),
        ("F", False, False),
        (None, False, False),
        ("yes", False, True),
        ("2", False, True),
    ],
)
def test_booleans(stored, flag, unreadable):
    flags, bad = parse_flags(pd.Series([stored], dtype=object))
    assert (bool(flags.iloc[0]), bool(bad.iloc[0])) == (flag, unreadable)
