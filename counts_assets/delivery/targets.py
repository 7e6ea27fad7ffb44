"""Where files go. Both targets write under a temporary name that does not end in `.csv`,
check it, and rename it into place, so a reader never sees half a file."""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")


class DeliveryError(RuntimeError):
    """A delivery that failed. `transient` failures are retried; the others fail at once."""

    def __init__(self, message: str, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class Receipt:
    location: str  # where the file now is, without credentials
    size: int
    sha256: str


class DeliveryTarget(Protocol):
    def deliver(self, remote_dir: str, name: str, content: bytes) -> Receipt: ...

    def describe(self) -> str: ...


def contained_path(base: str, remote_dir: str, name: str) -> str:
    """`<base>/<remote_dir>/<name>`, refusing anything that would leave `<base>`."""
    segments = remote_dir.split("/")
    if (
        remote_dir.startswith("/")
        or not all(_SAFE_NAME.match(s) and s not in {".", ".."} for s in segments)
        or not _SAFE_NAME.match(name)
    ):
        raise DeliveryError(
            f"refusing to deliver {name!r} to remote_dir {remote_dir!r}: it would leave the "
            f"delivery base {base!r}",
            transient=False,
        )
    root = posixpath.normpath(base) if base else "."
    path = posixpath.normpath(posixpath.join(root, remote_dir, name))
    if not path.startswith(root.rstrip("/") + "/"):
        raise DeliveryError(f"refusing {path!r}: outside the delivery base {root!r}", False)
    return path


def temporary_name(name: str, sha256: str) -> str:
    """Same name for the same content, so a retry overwrites its own leftover."""
    return f".{name}.{sha256[:16]}.part"


class OutboxTarget:
    """`file:///abs/path`: a local outbox folder."""

    def __init__(self, base: Path) -> None:
        self.base = base

    def describe(self) -> str:
        return f"file://{self.base}"

    def deliver(self, remote_dir: str, name: str, content: bytes) -> Receipt:
        final = Path(contained_path(str(self.base), remote_dir, name))
        sha = hashlib.sha256(content).hexdigest()
        final.parent.mkdir(parents=True, exist_ok=True)
        temp = final.with_name(temporary_name(name, sha))
        try:
            with open(temp, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            if hashlib.sha256(temp.read_bytes()).hexdigest() != sha:
                raise DeliveryError(f"{temp} does not read back as written", transient=True)
            os.replace(temp, final)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise DeliveryError(f"cannot write {final}: {exc}", transient=False) from exc
        return Receipt(location=f"file://{final}", size=len(content), sha256=sha)
