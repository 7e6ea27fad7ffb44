"""Environment settings, each with its documented default (README, Configuration)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

DEFAULT_ORGS_DIR = "./organizations"
DEFAULT_SOURCE_URL = "sqlite:///data/demo_source.sqlite"
DEFAULT_EXPORT_DIR = "./data/exports"
DEFAULT_FIRST_DATE = "2025-01-01"
DEFAULT_DELIVERY_URL = "file://" + str(Path("./data/outbox").resolve())
DEFAULT_GRACE_MINUTES = 60
DEFAULT_DELIVERY_RETRY_MINUTES = 10.0
DEFAULT_DELIVERY_ATTEMPTS = 6
DEFAULT_AUDIT_DAYS = 35
DEFAULT_LOCK_WAIT_SECONDS = 60.0


def orgs_dir() -> Path:
    return Path(os.environ.get("COUNTS_ORGS_DIR", DEFAULT_ORGS_DIR))


def source_url() -> str:
    return os.environ.get("COUNTS_SOURCE_URL", DEFAULT_SOURCE_URL)


def export_dir() -> Path:
    return Path(os.environ.get("COUNTS_EXPORT_DIR", DEFAULT_EXPORT_DIR))


def first_date() -> dt.date:
    raw = os.environ.get("COUNTS_FIRST_DATE", DEFAULT_FIRST_DATE)
    try:
        return dt.date.fromisoformat(raw.strip())
    except ValueError as exc:
        raise ValueError(f"COUNTS_FIRST_DATE={raw!r} is not a YYYY-MM-DD date") from exc


def grace_minutes() -> int:
    raw = os.environ.get("COUNTS_GRACE_MINUTES", str(DEFAULT_GRACE_MINUTES))
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValueError(f"COUNTS_GRACE_MINUTES={raw!r} is not a whole number") from exc
    if value < 0:
        raise ValueError(f"COUNTS_GRACE_MINUTES={raw!r} must not be negative")
    return value


def delivery_retry_minutes() -> float:
    """How often a pair that is still pending is requested again (fractions allowed)."""
    raw = os.environ.get("COUNTS_DELIVERY_RETRY_MINUTES", str(DEFAULT_DELIVERY_RETRY_MINUTES))
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"COUNTS_DELIVERY_RETRY_MINUTES={raw!r} is not a number") from exc
    if not value > 0:
        raise ValueError(f"COUNTS_DELIVERY_RETRY_MINUTES={raw!r} must be more than 0")
    return value


def delivery_attempts() -> int:
    """Attempts per pair within one delivery run."""
    raw = os.environ.get("COUNTS_DELIVERY_ATTEMPTS", str(DEFAULT_DELIVERY_ATTEMPTS))
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValueError(f"COUNTS_DELIVERY_ATTEMPTS={raw!r} is not a whole number") from exc
    if value < 1:
        raise ValueError(f"COUNTS_DELIVERY_ATTEMPTS={raw!r} must be at least 1")
    return value


def audit_days() -> int:
    """How many past days of pairs `delivery_audit` reads back at each destination."""
    raw = os.environ.get("COUNTS_AUDIT_DAYS", str(DEFAULT_AUDIT_DAYS))
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValueError(f"COUNTS_AUDIT_DAYS={raw!r} is not a whole number") from exc
    if value < 0:
        raise ValueError(f"COUNTS_AUDIT_DAYS={raw!r} must not be negative")
    return value


def audit_repair() -> bool:
    """Whether `delivery_audit` makes the divergent pairs it finds pending again."""
    raw = os.environ.get("COUNTS_AUDIT_REPAIR", "false").strip().casefold()
    if raw not in ("true", "false"):
        raise ValueError(f"COUNTS_AUDIT_REPAIR={raw!r} must be true or false")
    return raw == "true"


def lock_wait_seconds() -> float:
    """How long a run waits for a pair's lock before that pair fails alone."""
    raw = os.environ.get("COUNTS_LOCK_WAIT_SECONDS", str(DEFAULT_LOCK_WAIT_SECONDS))
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"COUNTS_LOCK_WAIT_SECONDS={raw!r} is not a number") from exc
    if not value > 0:
        raise ValueError(f"COUNTS_LOCK_WAIT_SECONDS={raw!r} must be more than 0")
    return value
