"""A real HTTP server for the webhooks tests: it records every request and answers from a script.

``with Receiver([(503, {}), (200, {})]) as receiver:`` listens on 127.0.0.1 on a free port (``receiver.url``) in a
thread; the first request gets 503, the second 200, any later one 200. ``receiver.requests`` holds what arrived.
``tls=`` (an ``ssl.SSLContext`` with a certificate) makes it https; ``delay=`` answers that many seconds late.
"""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = tuple[int, dict[str, str]]


@dataclass(frozen=True)
class Request:
    at: float  # time.monotonic() when it arrived
    path: str
    headers: Message  # case-insensitive: headers["x-webhook-signature"]
    body: bytes


class Receiver:
    def __init__(self, answers: list[Answer] | None = None, *, delay: float = 0.0,
                 tls: ssl.SSLContext | None = None) -> None:
        self.answers = list(answers or [])
        self.delay = delay  # seconds to wait before answering (a slow receiver)
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        if tls is not None:  # https: the context holds the server's certificate
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.requests.append(Request(time.monotonic(), self.path, self.headers, body))
                    status, headers = receiver.answers.pop(0) if receiver.answers else (200, {})
                if receiver.delay:
                    time.sleep(receiver.delay)
                payload = b"ok" if status < 300 else f"answer {status}".encode()
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (a read timeout test)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
                pass

        return Handler
