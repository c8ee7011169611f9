"""A loopback TCP proxy that can turn into a network black hole: connections stay open,
bytes are taken and never delivered, nothing is reset (as when a host or a route vanishes
behind a firewall that drops packets)."""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.servers.smtp import free_port


class BlackHoleProxy:
    """Forwards 127.0.0.1:`port` to `target_port` until `black_hole()`; from then on every
    byte, on connections old and new, is swallowed. `restore()` lets new connections through
    again (those cut off stay dead, as after a real outage)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._generation = 0  # bumped by black_hole(): connections of older ones are dead
        self._swallowing = False
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def black_hole(self) -> None:
        with self._lock:
            self._generation += 1
            self._swallowing = True

    def restore(self) -> None:
        with self._lock:
            self._swallowing = False

    def _dead(self, generation: int) -> bool:
        with self._lock:
            return self._swallowing or generation != self._generation

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                generation = self._generation
                self._sockets.append(client)
            if self._dead(generation):
                threading.Thread(target=self._swallow, args=(client,), daemon=True).start()
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.append(server)
            for source, sink in ((client, server), (server, client)):
                threading.Thread(
                    target=self._pump, args=(source, sink, generation), daemon=True
                ).start()

    def _pump(self, source: socket.socket, sink: socket.socket, generation: int) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if not self._dead(generation):
                    sink.sendall(data)
        if not self._dead(generation):  # a black hole tells nobody anything ended
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    @staticmethod
    def _swallow(client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while client.recv(65536):
                pass

    def close(self) -> None:
        with self._lock:
            for each in self._sockets:
                with contextlib.suppress(OSError):
                    each.close()
