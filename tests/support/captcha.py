"""A fake CAPTCHA verifier: a real HTTP server speaking the siteverify protocol.

The token decides the verdict: `pass` succeeds, `fail` fails, `score-0.3`
succeeds with that score, `slow` answers after `slow_seconds`, `broken`
answers 500, `garbage` answers something that is not JSON. Every request it
received is kept in `requests`, so tests can check what was sent.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs


@dataclass
class FakeVerifier:
    slow_seconds: float = 8.0
    requests: list[dict[str, str]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/siteverify"

    def __enter__(self) -> FakeVerifier:
        verifier = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                form = {
                    k: v[0]
                    for k, v in parse_qs(self.rfile.read(length).decode()).items()
                }
                verifier.requests.append(form)
                token = form.get("response", "")
                if token == "slow":
                    time.sleep(verifier.slow_seconds)
                if token == "broken":
                    self._answer(500, b"oops", "text/plain")
                elif token == "garbage":
                    self._answer(200, b"<html>", "text/html")
                else:
                    self._answer(
                        200, json.dumps(_verdict(token)).encode(), "application/json"
                    )

            def _answer(self, status: int, body: bytes, media_type: str) -> None:
                self.send_response(status)
                self.send_header("content-type", media_type)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()


def _verdict(token: str) -> dict[str, object]:
    if token.startswith("score-"):
        return {"success": True, "score": float(token.removeprefix("score-"))}
    if token in ("pass", "slow"):
        return {"success": True}
    return {"success": False, "error-codes": ["invalid-input-response"]}
