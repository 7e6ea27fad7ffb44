"""Loopback TCP proxies: one resets the first connection after a number of
client bytes, to cut an upload in the middle; one holds the first connection until released,
to keep a client waiting at a known point; one goes silent on every connection on request."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from typing import Self


class ResettingProxy:
    def __init__(self, upstream_port: int, cut_after_bytes: int | None) -> None:
        self.upstream_port = upstream_port
        self.cut_after_bytes = cut_after_bytes
        self.connections = 0
        self.cuts = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            first = self.connections == 1
            threading.Thread(target=self._forward, args=(client, first), daemon=True).start()

    def _forward(self, client: socket.socket, first: bool) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        cut = self.cut_after_bytes if first else None
        threading.Thread(target=self._pump, args=(client, upstream, cut), daemon=True).start()
        threading.Thread(target=self._pump, args=(upstream, client, None), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, cut: int | None) -> None:
        sent = 0
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if cut is not None and sent + len(data) > cut:
                    self.cuts += 1
                    for sock in (source, sink):  # RST, not FIN: a hard cut
                        sock.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                        sock.close()
                    return
                sink.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class HoldingProxy(ResettingProxy):
    """Accepts the first connection (`every`: each connection) and forwards nothing of it
    until `release()`; the others go through at once."""

    def __init__(self, upstream_port: int, every: bool = False) -> None:
        super().__init__(upstream_port, cut_after_bytes=None)
        self._released = threading.Event()
        self._every = every

    def release(self) -> None:
        self._released.set()

    def _forward(self, client: socket.socket, first: bool) -> None:
        if first or self._every:
            self._released.wait()
        super()._forward(client, first)


class SilencingProxy(ResettingProxy):
    """Forwards every connection until `silence()`: from then on nothing goes through in either
    direction, and the connections stay open (a server that stopped answering), until
    `resume()`."""

    def __init__(self, upstream_port: int) -> None:
        super().__init__(upstream_port, cut_after_bytes=None)
        self._flowing = threading.Event()
        self._flowing.set()

    def silence(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def _pump(self, source: socket.socket, sink: socket.socket, cut: int | None) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if not self._flowing.is_set():
                    # Swallowed, like a peer that hangs: the sender waits for an answer.
                    self._flowing.wait()
                    return
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
