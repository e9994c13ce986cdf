"""``uvicorn`` serving the app and API on a loopback port in a thread (tests, the load test)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerThread:
    """``uvicorn`` serving ``app`` on a loopback port in a thread (tests, the load test)."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        import uvicorn

        self.port = port or free_port()
        self.url = f"http://{host}:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=self.port, log_level="warning", lifespan="on",
                                                    proxy_headers=False))  # X-Forwarded-For: QA_TRUSTED_PROXIES only
        self.thread = threading.Thread(target=self.server.run, name="qa-api-server", daemon=True)

    def start(self, timeout_s: float = 60.0) -> str:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on {self.url} did not start")
            time.sleep(0.05)
        return self.url

    def stop(self, timeout_s: float = 30.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout_s)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
