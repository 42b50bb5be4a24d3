"""A tiny scripted HTTP server: each request takes the next scripted answer (or is forwarded to
a real server once the script is used up), and every request is recorded."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    # Close the connection after sending this much of the body (a broken stream).
    cut_after: int | None = None


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class FakeServer:
    def __init__(self, script: list[Answer], upstream: str | None = None) -> None:
        self.script = list(script)
        self.upstream = upstream
        self.seen: list[Seen] = []
        # Forward the first request upstream but answer it with 502 (a lost answer).
        self.lose_first_answer = False
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                fake.seen.append(Seen(self.command, self.path, headers, body))
                if fake.script:
                    answer = fake.script.pop(0)
                elif fake.upstream:
                    forwarded = {
                        k: v
                        for k, v in headers.items()
                        if k not in ("host", "content-length")
                    }
                    up = httpx.request(
                        self.command,
                        fake.upstream + self.path,
                        headers=forwarded,
                        content=body,
                        timeout=120,
                    )
                    if fake.lose_first_answer:
                        fake.lose_first_answer = False
                        up = httpx.Response(
                            502, content=b'{"error":{"message":"lost"}}'
                        )
                    answer = Answer(
                        up.status_code,
                        up.content,
                        {
                            k: v
                            for k, v in up.headers.items()
                            if k.lower()
                            in ("content-type", "x-request-id", "retry-after")
                        },
                    )
                else:
                    answer = Answer(500, b'{"error":{"message":"script exhausted"}}')
                time.sleep(answer.delay)
                try:
                    self.send_response(answer.status)
                    for k, v in answer.headers.items():
                        self.send_header(k, v)
                    self.send_header("content-length", str(len(answer.body)))
                    if answer.cut_after is not None:
                        self.send_header("connection", "close")
                    self.end_headers()
                    if answer.cut_after is not None:
                        self.wfile.write(answer.body[: answer.cut_after])
                        self.wfile.flush()
                        self.close_connection = True
                        return
                    self.wfile.write(answer.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_DELETE = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
