"""`DeliveryResource`: the target chosen by COUNTS_DELIVERY_URL, with its retry policy."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

import dagster as dg
from pydantic import Field

from counts_assets.core.delivery.retry import RetryPolicy
from counts_assets.core.delivery.sftp import SftpSettings, SftpTarget
from counts_assets.core.delivery.targets import DeliveryTarget, OutboxTarget

# The op pool that bounds simultaneous SFTP sessions (dagster.yaml: at most 4).
SFTP_POOL = "sftp"


class DeliveryConfigError(ValueError):
    pass


class DeliveryResource(dg.ConfigurableResource):
    """`file:///abs/path` (an outbox folder) or `sftp://user@host:port/base/dir`."""

    url: str
    key_file: str | None = None
    known_hosts: str | None = None
    timeout_seconds: float = Field(default=20.0, gt=0)
    attempts: int = Field(default=6, ge=1, description="Attempts per pair in one run.")
    retry_minutes: float = Field(
        default=10.0, gt=0, description="A pending pair is requested again this often."
    )
    batch_pairs: int = Field(default=500, ge=1, description="Most pairs in one delivery run.")
    first_delay_seconds: float = Field(default=2.0, ge=0)
    max_delay_seconds: float = Field(default=60.0, ge=0)
    audit_days: int = Field(
        default=35, ge=0, description="Past days of pairs delivery_audit reads back."
    )
    audit_repair: bool = Field(
        default=False, description="delivery_audit makes the divergent pairs pending again."
    )

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(self.attempts, self.first_delay_seconds, self.max_delay_seconds)

    def target(self) -> DeliveryTarget:
        return target_from_url(self.url, self.key_file, self.known_hosts, self.timeout_seconds)

    def destination(self, remote_dir: str) -> str:
        """Where an org's pairs go: the target's endpoint plus the org's remote_dir. A pair not
        yet delivered to the current destination is pending."""
        return f"{self.target().describe().rstrip('/')}/{remote_dir}"


def target_from_url(
    url: str, key_file: str | None, known_hosts: str | None, timeout: float
) -> DeliveryTarget:
    parts = urlsplit(url)
    path = unquote(parts.path)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not path.startswith("/"):
            raise DeliveryConfigError(f"COUNTS_DELIVERY_URL {url!r}: use file:///absolute/path")
        return OutboxTarget(Path(path))
    if parts.scheme == "sftp":
        if not parts.hostname or not parts.username or not path.startswith("/"):
            raise DeliveryConfigError(
                f"COUNTS_DELIVERY_URL {url!r}: use sftp://user@host:port/base/dir"
            )
        missing = [
            name
            for name, value in (
                ("COUNTS_SFTP_KEY_FILE", key_file),
                ("COUNTS_SFTP_KNOWN_HOSTS", known_hosts),
            )
            if not value
        ]
        if missing:
            raise DeliveryConfigError(f"SFTP delivery needs {' and '.join(missing)}")
        return SftpTarget(
            SftpSettings(
                host=parts.hostname,
                port=parts.port or 22,
                user=unquote(parts.username),
                base=path.rstrip("/") or "/",
                key_file=key_file,
                known_hosts=known_hosts,
                timeout=timeout,
            )
        )
    raise DeliveryConfigError(f"COUNTS_DELIVERY_URL {url!r}: the scheme must be file or sftp")
