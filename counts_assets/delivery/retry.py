"""Retries with exponential back-off and full jitter, for transient failures only."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from counts_assets.delivery.targets import DeliveryError, DeliveryTarget, Receipt


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    first_delay: float = 2.0
    max_delay: float = 60.0

    def delay(self, attempt: int, draw: Callable[[float, float], float] = random.uniform) -> float:
        """Full jitter: uniform in [0, min(max, first * 2^attempt)] (attempt counts from 0)."""
        return draw(0.0, min(self.max_delay, self.first_delay * 2**attempt))


def deliver_with_retries(
    target: DeliveryTarget,
    remote_dir: str,
    name: str,
    content: bytes,
    policy: RetryPolicy,
    log: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> Receipt:
    attempt = 0
    while True:
        try:
            return target.deliver(remote_dir, name, content)
        except DeliveryError as exc:
            attempt += 1
            if not exc.transient or attempt >= policy.attempts:
                raise
            wait = policy.delay(attempt - 1)
            log(f"attempt {attempt} of {policy.attempts} failed ({exc}); retrying in {wait:.1f}s")
            sleep(wait)
