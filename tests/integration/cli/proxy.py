"""A TCP proxy for tests that must cut a connection mid-stream, as a network failure would.

``drop()`` resets every open connection (RST: SO_LINGER 0); ``refuse()`` makes new connections
fail at once (accepted, then reset) until ``allow()``. ``sent`` holds every byte clients sent,
to check what went over the wire.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading

__all__ = ["TcpProxy"]

_RESET = struct.pack("ii", 1, 0)


def _reset(sock: socket.socket) -> None:
    """Abort the connection: shutting the read side wakes a thread blocked in recv (closing
    alone would wait for it), then closing with a zero linger sends RST."""
    with contextlib.suppress(OSError):  # already closed
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
        sock.shutdown(socket.SHUT_RD)
    sock.close()


class TcpProxy:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._accepting = True
        #: Connections forwarded so far (refused ones not counted).
        self.connections = 0
        self.sent = bytearray()
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:  # so that once refuse() returns, no connection gets through
                if not self._accepting:
                    _reset(client)
                    continue
                upstream = socket.create_connection(self._upstream)
                self._open += [client, upstream]
                self.connections += 1
            for source, target, record in ((client, upstream, True), (upstream, client, False)):
                pump = threading.Thread(
                    target=self._pump, args=(source, target, record), daemon=True
                )
                pump.start()

    def _pump(self, source: socket.socket, target: socket.socket, record: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if record:
                    with self._lock:
                        self.sent += data
                target.sendall(data)
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def drop(self) -> None:
        """Reset every connection now open."""
        with self._lock:
            cut, self._open = self._open, []
        for sock in cut:
            _reset(sock)

    def refuse(self) -> None:
        with self._lock:
            self._accepting = False
        self.drop()

    def allow(self) -> None:
        with self._lock:
            self._accepting = True

    def close(self) -> None:
        self._listener.close()
        self.drop()
