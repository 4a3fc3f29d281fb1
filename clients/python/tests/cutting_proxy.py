"""A TCP proxy on 127.0.0.1 that forwards to the server and cuts connections on command: the first
`cuts` connections are closed once `cut_after` bytes have gone from the server to the client,
mid-stream; later connections pass through untouched. Tests point a client at it to break a
download mid-stream."""

from __future__ import annotations

import socket
import struct
import threading


class CuttingProxy:
    def __init__(self, target: str, cut_after: int, cuts: int = 1) -> None:
        host, _, port = target.rpartition(":")
        self._upstream = (host, int(port))
        self.cut_after = cut_after
        self.cuts_left = cuts
        self.connections = 0
        self.cut = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.target = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def __enter__(self) -> CuttingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                doomed = self.cuts_left > 0
                if doomed:
                    self.cuts_left -= 1
            try:
                server = socket.create_connection(self._upstream)
            except OSError:
                client.close()
                continue
            pair = _Pair(client, server)
            threading.Thread(target=pair.pump, args=(client, server, None), daemon=True).start()
            limit = self.cut_after if doomed else None
            threading.Thread(target=self._pump_down, args=(pair, limit), daemon=True).start()

    def _pump_down(self, pair: _Pair, limit: int | None) -> None:
        if pair.pump(pair.server, pair.client, limit):
            with self._lock:
                self.cut += 1


class _Pair:
    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client = client
        self.server = server
        self._closed = threading.Event()

    def pump(self, source: socket.socket, sink: socket.socket, limit: int | None) -> bool:
        """Copies until either side closes; True when it cut the connection at `limit` bytes."""
        sent = 0
        try:
            while True:
                want = 65536 if limit is None else min(65536, limit - sent)
                data = source.recv(want)
                if not data:
                    break
                sink.sendall(data)
                sent += len(data)
                if limit is not None and sent >= limit:
                    # Closed (not reset, which would discard what the client has not read yet), so
                    # the client gets exactly the bytes forwarded, then the end of the connection.
                    self.close()
                    return True
        except OSError:
            pass
        self.close()
        return False

    def reset(self) -> None:
        """Closes both sockets with RST, as a crashed proxy or a dropped route would."""
        for sock in (self.client, self.server):
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.close()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        for sock in (self.client, self.server):
            # shutdown first: it wakes the other pump's recv, which close() alone would not.
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
