"""The environment is read in one place: defaults as documented, a wrong value named with the
variable, the value and the reason."""

from __future__ import annotations

import datetime as dt

import pytest

from counts_assets.core import settings


def test_the_defaults_are_the_documented_ones(monkeypatch):
    for name in ("COUNTS_FIRST_DATE", "COUNTS_AUDIT_REPAIR", "COUNTS_DELIVERY_ATTEMPTS"):
        monkeypatch.delenv(name, raising=False)
    env = settings.current()
    assert env.first_date == dt.date(2025, 1, 1)
    assert (env.grace_minutes, env.delivery_attempts, env.audit_days) == (60, 6, 35)
    assert env.audit_repair is False and env.dagster_internals is True


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("COUNTS_FIRST_DATE", "20250101", "not a YYYY-MM-DD date"),
        ("COUNTS_FIRST_DATE", "2025-13-01", "month must be in 1..12"),
        ("COUNTS_AUDIT_REPAIR", "yes", "must be true or false"),
        ("COUNTS_DELIVERY_ATTEMPTS", "0", "greater than or equal to 1"),
        ("COUNTS_DELIVERY_RETRY_MINUTES", "soon", "valid number"),
    ],
)
def test_a_wrong_value_is_named_with_its_reason(monkeypatch, name, value, said):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=f"{name}='{value}'") as error:
        settings.current()
    assert said in str(error.value)


def test_values_are_read_as_written_around_spaces(monkeypatch):
    monkeypatch.setenv("COUNTS_FIRST_DATE", " 2026-01-01\n")
    monkeypatch.setenv("COUNTS_AUDIT_REPAIR", " TRUE ")
    env = settings.current()
    assert env.first_date == dt.date(2026, 1, 1) and env.audit_repair is True
