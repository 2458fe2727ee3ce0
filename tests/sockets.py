"""A client that opens many idle connections to a server on loopback and sends nothing (a bounded loop): the
web view's and the collect page's servers must not give each one a thread."""
from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def idle_connections(address: tuple[str, int], count: int = 200, settle_s: float = 0.5) -> Iterator[int]:
    """Opens `count` connections that never send a request, waits `settle_s`, yields how many threads the process
    has gained since; the connections are closed on leaving."""
    before = threading.active_count()
    idle = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.setblocking(False)  # the kernel's listen queue is full at times: do not wait for it
            sock.connect_ex(address)
            idle.append(sock)
        time.sleep(settle_s)
        yield threading.active_count() - before
    finally:
        for sock in idle:
            sock.close()
