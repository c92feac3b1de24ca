"""A webhook receiver: a real HTTP server in a thread, scripted by a test.

It stands for the mail platform Headwater delivers to. By default it answers
200. A test changes that with `answer` (every request from now on), `then`
(the next requests, one reply each, before the default again) or `decide`
(a function of the request, for answers that depend on what was sent). A
reply may be any status, carry headers such as `Retry-After`, and come
after a delay. Every request is kept in `received`, with its headers and raw
body bytes, as it arrived and before the reply is sent, so a test can see a
delivery that is still in flight.

`verify` is the signature check that docs/delivery.md tells receivers to
make, written out independently of Headwater's own code.
"""

from __future__ import annotations

import hashlib
import hmac
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final

import orjson

SIGNATURE_TOLERANCE_SECONDS: Final = 300


@dataclass(frozen=True)
class Reply:
    """What the receiver answers, and how long it waits before answering."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0


OK: Final = Reply(200)
BROKEN: Final = Reply(500)
UNAVAILABLE: Final = Reply(503)
REFUSED: Final = Reply(400)


def too_many(retry_after: str) -> Reply:
    """429 with the given `Retry-After` value (seconds or an HTTP date)."""
    return Reply(429, {"Retry-After": retry_after})


def slow(seconds: float, status: int = 200) -> Reply:
    return Reply(status, delay=seconds)


@dataclass(frozen=True)
class Received:
    """One request as it arrived."""

    method: str
    path: str
    #: Header names in lower case.
    headers: Mapping[str, str]
    body: bytes
    #: `time.monotonic()` when the request was read.
    at: float

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def delivery_id(self) -> str:
        delivery_id: str = self.json()["deliveryId"]
        return delivery_id

    @property
    def signature(self) -> str:
        return self.headers.get("headwater-signature", "")

    def signed_with(self, secrets: Sequence[str]) -> bool:
        return verify(self.signature, self.body, secrets)


def verify(
    header: str, body: bytes, secrets: Sequence[str], *, now: float | None = None
) -> bool:
    """The receiver's check from docs/delivery.md: a recent `t`, and one `v1`
    that equals the HMAC-SHA256 of `"<t>.<body>"` under an accepted secret."""
    fields = [part.split("=", 1) for part in header.split(",") if "=" in part]
    stamps = [value for name, value in fields if name == "t"]
    sent = [value for name, value in fields if name == "v1"]
    if len(stamps) != 1 or not stamps[0].isdigit() or not sent:
        return False
    current = time.time() if now is None else now
    if abs(current - int(stamps[0])) > SIGNATURE_TOLERANCE_SECONDS:
        return False
    signed = stamps[0].encode() + b"." + body
    for secret in secrets:
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        if any(hmac.compare_digest(expected, value) for value in sent):
            return True
    return False


class QuietServer(ThreadingHTTPServer):
    """Threads per request; a sender that hung up is not an error here."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class Receiver:
    """A local HTTP server that records requests and answers as scripted."""

    def __init__(self, path: str = "/hooks/headwater") -> None:
        self._path = path
        self._lock = threading.Condition()
        self._default = OK
        self._queued: deque[Reply] = deque()
        self._decide: Callable[[Received], Reply | None] | None = None
        self._received: list[Received] = []
        self._closing = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    # -- scripting

    def answer(self, reply: Reply) -> None:
        """Answer every request with `reply` from now on."""
        with self._lock:
            self._default = reply

    def then(self, *replies: Reply) -> None:
        """Answer the next requests with `replies`, one each, in order."""
        with self._lock:
            self._queued.extend(replies)

    def fail_times(self, count: int, reply: Reply = BROKEN) -> None:
        """Fail the next `count` requests, then go back to the default."""
        self.then(*[reply] * count)

    def decide(self, choose: Callable[[Received], Reply | None]) -> None:
        """Let `choose` pick the reply; when it answers None the script goes on."""
        with self._lock:
            self._decide = choose

    def _reply_for(self, request: Received) -> Reply:
        with self._lock:
            self._received.append(request)
            self._lock.notify_all()
            choose = self._decide
            if choose is None or (reply := choose(request)) is None:
                reply = self._queued.popleft() if self._queued else self._default
        return reply

    # -- what arrived

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self._path}"

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def of(self, delivery_id: str) -> list[Received]:
        return [r for r in self.received if r.delivery_id == delivery_id]

    def wait_for(
        self,
        count: int = 1,
        *,
        timeout: float = 10.0,
        where: Callable[[Received], bool] = lambda _: True,
    ) -> list[Received]:
        """The first `count` requests that match `where`, once they arrived;
        raises `TimeoutError` when they do not arrive within `timeout`."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                matching = [r for r in self._received if where(r)]
                if len(matching) >= count:
                    return matching[:count]
                left = deadline - time.monotonic()
                if left <= 0:
                    msg = (
                        f"the receiver got {len(matching)} matching requests "
                        f"of {count} within {timeout} s"
                    )
                    raise TimeoutError(msg)
                self._lock.wait(left)

    # -- running

    def __enter__(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                request = Received(
                    method="POST",
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    at=time.monotonic(),
                )
                reply = receiver._reply_for(request)
                # A slow reply ends early when the receiver is closed.
                if reply.delay and receiver._closing.wait(reply.delay):
                    self.close_connection = True
                    return
                content = b'{"ok": true}' if reply.status < 300 else b'{"ok": false}'
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(content)))
                    self.end_headers()
                    self.wfile.write(content)
                except OSError:
                    # The sender gave up (a timeout) or died (a killed server).
                    self.close_connection = True

            def log_message(self, *_: object) -> None:
                return

        self._server = QuietServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
