"""How an export fails: in words naming the file or the store, and retried only when a later
try may pass (a full disk, an I/O error, a store that could not be reached)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import dagster as dg
import sqlalchemy as sa

from counts_assets.core.pairs.store import disk_failure


def failure_may_pass(exc: Exception) -> bool:
    """Whether a later try may succeed: after a full disk or an I/O error, or a database that
    could not be reached, was busy or dropped the connection."""
    if isinstance(exc, OSError):
        return disk_failure(exc).may_pass
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError)


def retry_rule(may_pass: bool) -> str:
    return "it may pass: retried" if may_pass else "it would fail the same way: not retried"


def named_failures(body: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    """Whatever escapes the export fails it in words, and Dagster retries only what may pass
    (a bug retried twice only delays its report by three minutes). The error's own text is
    left to the stack trace: it may quote a value read from the store."""

    @functools.wraps(body)
    def export(*args: Any, **kwargs: Any) -> Iterator[Any]:
        try:
            yield from body(*args, **kwargs)
        except (dg.Failure, dg.RetryRequested):
            raise
        except Exception as exc:
            if isinstance(exc, OSError):
                failure = disk_failure(exc)
                what = f"{failure.path}: {failure.reason}"
            elif isinstance(exc, sa.exc.SQLAlchemyError):
                what = f"a database error ({type(exc).__name__})"
            else:
                what = f"an unexpected error ({type(exc).__name__})"
            may_pass = failure_may_pass(exc)
            raise dg.Failure(
                description=f"The export stopped: {what}; {retry_rule(may_pass)}. Pairs "
                "recorded before it stay published.",
                allow_retries=may_pass,
            ) from exc

    return export
