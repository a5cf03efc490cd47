"""A forwarding HTTP proxy on loopback that trickles response bodies: a slow or hostile proxy between
the loader and the API (clients reach it through ``HTTP_PROXY``). Plain HTTP only, one request per
connection; it answers with ``Connection: close``.

    with TrickleProxy(bytes_per_s=400) as proxy:   # proxy.url: http://127.0.0.1:<port>
        ...                                         # proxy.requests: requests forwarded so far
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from urllib.parse import urlsplit


class TrickleProxy:
    def __init__(self, bytes_per_s: float = 0.0) -> None:
        self.bytes_per_s = bytes_per_s  # 0: bodies pass at once
        self.requests = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._stopped = threading.Event()
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> TrickleProxy:
        threading.Thread(target=self._accept, name="trickle-proxy", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client, contextlib.suppress(OSError):
            head = _read_head(client)
            if not head:
                return
            line, _, headers = head.partition(b"\r\n")
            method, target, version = line.split(b" ", 2)
            url = urlsplit(target.decode())
            path = url.path + (f"?{url.query}" if url.query else "")
            kept = [h for h in headers.split(b"\r\n") if h and not h.lower().startswith((b"connection:", b"proxy-"))]
            request = b"\r\n".join([b" ".join([method, path.encode(), version]), *kept, b"Connection: close", b"", b""])
            with self._lock:
                self.requests += 1
            with socket.create_connection((url.hostname, url.port or 80), timeout=30) as upstream:
                upstream.sendall(request)
                answer = b"".join(iter(lambda: upstream.recv(65536), b""))
            head, _, body = answer.partition(b"\r\n\r\n")
            client.sendall(head + b"\r\n\r\n")
            self._send_body(client, body)

    def _send_body(self, client: socket.socket, body: bytes) -> None:
        if not self.bytes_per_s:
            client.sendall(body)
            return
        chunk = max(1, int(self.bytes_per_s / 10))  # ten writes a second
        for i in range(0, len(body), chunk):
            if self._stopped.is_set():
                return
            client.sendall(body[i : i + chunk])
            time.sleep(chunk / self.bytes_per_s)


def _read_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            return b""
        data += more
    return data.split(b"\r\n\r\n", 1)[0]
