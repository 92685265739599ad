"""A real TCP proxy for fault tests: put it between a service and its database, then cut the
line and restore it.

    with Proxy(upstream=("127.0.0.1", 5432)) as proxy:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/test"
        ...
        proxy.cut()      # every open connection is dropped, new ones are refused
        ...
        proxy.restore()  # connections are accepted again, on the same port

Threads, not asyncio, so it runs beside any test, async or not.
"""

import contextlib
import socket
import threading
from types import TracebackType

CHUNK = 65536
# How often the accept loop looks at whether it should stop.
ACCEPT_POLL_SECONDS = 0.1


class Proxy:
    def __init__(self, *, upstream: tuple[str, int], port: int = 0) -> None:
        self.upstream = upstream
        self.port = port  # 0: a free port, chosen by start()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self.connections = 0  # accepted since start, for tests that want to know

    def start(self) -> "Proxy":
        """Listen on 127.0.0.1:port and forward every connection to upstream."""
        listener = socket.create_server(("127.0.0.1", self.port))
        listener.settimeout(ACCEPT_POLL_SECONDS)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._acceptor = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._acceptor.start()
        return self

    def cut(self) -> None:
        """Close the listener (a new connection is refused) and every open connection (the
        next read or write on either side fails), as a database restart does."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        if self._acceptor is not None:
            self._acceptor.join()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            # Wakes the pumps, which close their sockets.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        """Accept connections again, on the same port."""
        self.start()

    def stop(self) -> None:
        self.cut()

    def __enter__(self) -> "Proxy":
        return self.start()

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed by cut()
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, server))
                self.connections += 1
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while chunk := source.recv(CHUNK):
                target.sendall(chunk)
        except OSError:
            pass
        # One side is done: end both, as a TCP connection through a dead host ends. Each
        # socket is the source of one pump, which closes it.
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        with self._lock:
            self._sockets.discard(source)
        source.close()
