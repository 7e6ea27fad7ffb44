"""One connection to the target for a whole delivery run, and retries of transient failures with
exponential back-off and full jitter (tenacity); the attempts count per pair. A permanent
failure, or a pair whose attempts are spent (the target is down), ends the run: the pairs not
sent stay pending."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

from counts_assets.core.delivery.targets import Connection, DeliveryError, DeliveryTarget

Result = TypeVar("Result")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    first_delay: float = 2.0
    max_delay: float = 60.0

    def wait(self) -> tenacity.wait.wait_base:
        """Full jitter: uniform in [0, min(max, first * 2^(n-1))] before attempt n+1."""
        return tenacity.wait_random_exponential(multiplier=self.first_delay, max=self.max_delay)


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
    before_wait: Callable[[], None] = lambda: None,
) -> Result:
    """`attempt(connection)` until it succeeds, a permanent failure, or the policy's attempts
    are spent; a failed attempt drops the connection, and the next one opens a new one.
    `before_wait` runs before each wait between attempts (what the caller holds is let go)."""

    def once() -> Result:
        try:
            return attempt(session.connection())
        except DeliveryError:
            session.drop()
            raise

    def say(state: tenacity.RetryCallState) -> None:
        before_wait()
        log(
            f"attempt {state.attempt_number} of {policy.attempts} failed "
            f"({state.outcome.exception()}); retrying in {state.upcoming_sleep:.1f}s"
        )

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(policy.attempts),
        wait=policy.wait(),
        retry=tenacity.retry_if_exception(lambda e: isinstance(e, DeliveryError) and e.transient),
        before_sleep=say,
        sleep=sleep,
        reraise=True,
    )
    return retrying(once)
