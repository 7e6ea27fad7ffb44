"""Sends pairs over one connection, retrying transient failures with exponential back-off and
full jitter; the attempts count per pair. A permanent failure, or a pair whose attempts are
spent (the target is down), ends the batch: the pairs not sent stay pending."""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from counts_assets.delivery.targets import Connection, DeliveryError, DeliveryTarget, Receipt

Item = TypeVar("Item")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    first_delay: float = 2.0
    max_delay: float = 60.0

    def delay(self, attempt: int, draw: Callable[[float, float], float] = random.uniform) -> float:
        """Full jitter: uniform in [0, min(max, first * 2^attempt)] (attempt counts from 0)."""
        return draw(0.0, min(self.max_delay, self.first_delay * 2**attempt))


def send_batch(
    target: DeliveryTarget,
    items: Iterable[Item],
    files_of: Callable[[Item], tuple[str, Sequence[tuple[str, bytes]]]],
    policy: RetryPolicy,
    log: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[tuple[Item, list[Receipt]]]:
    """Yields each item with its receipts as soon as it is delivered. `files_of(item)` gives
    (remote_dir, [(name, bytes), ...]) in rename order."""
    with contextlib.ExitStack() as stack:
        connection: Connection | None = None
        for item in items:
            remote_dir, files = files_of(item)
            attempt = 0
            while True:
                try:
                    if connection is None:
                        connection = stack.enter_context(target.connect())
                    receipts = connection.send(remote_dir, files)
                    break
                except DeliveryError as exc:
                    stack.close()
                    connection = None
                    attempt += 1
                    if not exc.transient or attempt >= policy.attempts:
                        raise
                    wait = policy.delay(attempt - 1)
                    log(
                        f"attempt {attempt} of {policy.attempts} failed ({exc}); "
                        f"retrying in {wait:.1f}s"
                    )
                    sleep(wait)
            yield item, receipts


def deliver_with_retries(
    target: DeliveryTarget,
    remote_dir: str,
    name: str,
    content: bytes,
    policy: RetryPolicy,
    log: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> Receipt:
    """One file, with the same retries."""
    for _, receipts in send_batch(
        target, [name], lambda n: (remote_dir, [(n, content)]), policy, log, sleep
    ):
        return receipts[0]
    raise AssertionError("unreachable: send_batch yields the item or raises")
