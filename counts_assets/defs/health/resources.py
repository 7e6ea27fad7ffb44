"""`AlertHook`: where failed runs and changes of the fleet's health are sent (`COUNTS_ALERT_URL`):
a `file:///path` (appended) or an `http(s)://` webhook (POSTed), one JSON line each."""

import json
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlsplit

import dagster as dg


class AlertHook(dg.ConfigurableResource):
    url: str | None = None

    def send(self, alert: dict) -> None:
        if not self.url:
            return
        line = json.dumps(alert, sort_keys=True)
        parts = urlsplit(self.url)
        if parts.scheme == "file":
            path = Path(unquote(parts.path))
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")
        elif parts.scheme in ("http", "https"):
            request = urllib.request.Request(
                self.url, data=line.encode(), headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=10):
                pass
        else:
            raise ValueError(f"COUNTS_ALERT_URL {self.url!r}: use file:///path or http(s)://")
