"""The platform's environment, `COUNTS_<NAME>`, each with its documented default (README,
Configuration), parsed and checked in one place (pydantic-settings). A wrong value fails
naming the variable, the value and the reason."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


def _iso_date(value: object) -> object:
    # Only YYYY-MM-DD: pydantic alone would read a number as a timestamp, and Python's
    # fromisoformat also takes 20250101 and week dates.
    if isinstance(value, str):
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
            raise ValueError("not a YYYY-MM-DD date")
        return dt.date.fromisoformat(value.strip())
    return value


def _true_or_false(value: object) -> object:
    # Only true or false, as documented (pydantic alone also takes yes, on, 1...).
    if isinstance(value, str):
        word = value.strip().casefold()
        if word not in ("true", "false"):
            raise ValueError("must be true or false")
        return word == "true"
    return value


Flag = Annotated[bool, BeforeValidator(_true_or_false)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COUNTS_", frozen=True, extra="ignore")

    orgs_dir: Path = Path("./organizations")
    source_url: str = "sqlite:///data/demo_source.sqlite"
    export_dir: Path = Path("./data/exports")
    first_date: Annotated[dt.date, BeforeValidator(_iso_date)] = dt.date(2025, 1, 1)
    delivery_url: str = Field(
        default_factory=lambda: "file://" + str(Path("./data/outbox").resolve())
    )
    sftp_key_file: str | None = None
    sftp_known_hosts: str | None = None
    alert_url: str | None = None
    grace_minutes: int = Field(60, ge=0)
    delivery_retry_minutes: float = Field(10.0, gt=0)  # fractions allowed
    delivery_attempts: int = Field(6, ge=1)  # per pair within one delivery run
    audit_days: int = Field(35, ge=0)  # past days of pairs delivery_audit reads back
    audit_repair: Flag = False  # whether delivery_audit makes divergent pairs pending again
    lock_wait_seconds: float = Field(60.0, gt=0)  # a run's wait for a pair's lock
    # false: Dagster's public behaviour only (defs/shared/dagster_internals.py), slower
    dagster_internals: Flag = True


def current() -> Settings:
    """The environment as it is now (read at each call: a test or a shell may change it)."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ValueError(
            "; ".join(
                f"COUNTS_{str(error['loc'][0]).upper()}={error['input']!r}: {error['msg']}"
                for error in exc.errors()
            )
        ) from None
