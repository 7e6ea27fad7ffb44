"""One connection to the target for a whole delivery run, and retries of transient failures
with exponential back-off and full jitter; the attempts count per pair. A permanent failure, or
a pair whose attempts are spent (the target is down), ends the run: the pairs not sent stay
pending."""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from counts_assets.core.delivery.targets import Connection, DeliveryError, DeliveryTarget

Result = TypeVar("Result")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    first_delay: float = 2.0
    max_delay: float = 60.0

    def delay(self, attempt: int, draw: Callable[[float, float], float] = random.uniform) -> float:
        """Full jitter: uniform in [0, min(max, first * 2^attempt)] (attempt counts from 0)."""
        return draw(0.0, min(self.max_delay, self.first_delay * 2**attempt))


class Session:
    """The run's connection, opened when first needed and again after a failure dropped it."""

    def __init__(self, target: DeliveryTarget) -> None:
        self.target = target
        self._stack = contextlib.ExitStack()
        self._connection: Connection | None = None

    def connection(self) -> Connection:
        if self._connection is None:
            self._connection = self._stack.enter_context(self.target.connect())
        return self._connection

    def drop(self) -> None:
        self._connection = None
        self._stack.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.drop()


def with_retries(
    session: Session,
    attempt: Callable[[Connection], Result],
    policy: RetryPolicy,
    log: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> Result:
    """`attempt(connection)` until it succeeds, a permanent failure, or the policy's attempts
    are spent; a failed attempt drops the connection, and the next one opens a new one."""
    tries = 0
    while True:
        try:
            return attempt(session.connection())
        except DeliveryError as exc:
            session.drop()
            tries += 1
            if not exc.transient or tries >= policy.attempts:
                raise
            wait = policy.delay(tries - 1)
            log(f"attempt {tries} of {policy.attempts} failed ({exc}); retrying in {wait:.1f}s")
            sleep(wait)
