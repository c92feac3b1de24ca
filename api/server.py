"""`headwater serve`: the HTTP service on hypercorn."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Final

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config
from hypercorn.run import run as hypercorn_run

from api.bootstrap import Container, build
from api.http.app import create_app
from api.settings import Settings

logger = logging.getLogger(__name__)

GRACEFUL_SECONDS: Final = 10
#: The request line and headers together; more is answered 431 by hypercorn
#: (h11), with no body, and the connection is closed. docs/reliability.md.
MAX_HEADER_BYTES: Final = 16 * 1024
#: A connection that sends no complete request line and headers within this
#: long is closed without an answer. The body has its own deadline, kept by
#: the application (api/http/jsonio.py), as this timer stops at the headers.
HEADERS_SECONDS: Final = 5
PR_SET_PDEATHSIG: Final = 1
CHILD_BACKOFF_FIRST: Final = 1.0
CHILD_BACKOFF_MAX: Final = 30.0
CHILD_HEALTHY_SECONDS: Final = 30.0
#: The last line of the start-up announcement.
STOP_HINT: Final = "Press Ctrl+C to stop."


def hypercorn_config(host: str, port: int, workers: int) -> Config:
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.workers = workers
    # Access logs would carry query strings; the service logs requests itself.
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = GRACEFUL_SECONDS
    # Pinned rather than inherited, so that the limits docs/reliability.md
    # states do not move with a hypercorn upgrade.
    config.h11_max_incomplete_size = MAX_HEADER_BYTES
    config.h2_max_header_list_size = MAX_HEADER_BYTES
    config.keep_alive_timeout = HEADERS_SECONDS
    return config


def announce(container: Container, address: str) -> None:
    """Print the first admin token, once ever, and where the service listens."""
    issued = container.tokens.issue_first_admin()
    lines = [
        f"Headwater is listening on {address} ({container.location.describe()})",
        f"Console: {address}/console",
    ]
    if issued is not None:
        lines += [
            "An admin token was created. It is shown this once; keep it safe:",
            f"  {issued.secret}",
            f'  try: curl -H "Authorization: Bearer {issued.secret}" '
            f"{address}/admin/v1/integrations",
        ]
    lines.append(STOP_HINT)
    print("\n".join(lines), file=sys.stdout, flush=True)


def serve(
    settings: Settings, *, host: str, port: int, workers: int, projections: bool = True
) -> int:
    """Serve HTTP; unless told not to, run the projections and the delivery
    worker too: in a child process on PostgreSQL, so that they never compete
    with the requests for this process's interpreter lock; in this process on
    SQLite, where each write wakes them at once."""
    address = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
    if settings.public_base_url is None:
        settings = settings.model_copy(update={"public_base_url": address})
    container = build(settings)
    announce(container, address)
    config = hypercorn_config(host, port, workers)
    # Keys a restored backup brought back go before anything is served.
    container.compliance.destroy_erased_keys()
    child: ChildProjector | None = None
    if projections and container.location.dialect == "postgres":
        child = ChildProjector()
        child.start()
    elif projections:
        container.run_background()
    try:
        if workers > 1:
            # Each worker builds its own container from the environment; this
            # process only runs the projections and watches the workers.
            os.environ["HEADWATER_PUBLIC_BASE_URL"] = (
                settings.public_base_url or address
            )
            config.application_path = "api.http.asgi:create()"
            return hypercorn_run(config)
        asyncio.run(_serve_until_signalled(create_app(container), config))
    finally:
        if child is not None:
            child.stop()
        container.close()
    return 0


def _die_with_parent() -> None:
    """In the child: be terminated when the serving process dies, even by
    SIGKILL, so no orphaned projector keeps running (Linux only)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class ChildProjector:
    """`headwater projector` as a child process, restarted if it dies."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._watch, name="child projector", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def _watch(self) -> None:
        backoff = CHILD_BACKOFF_FIRST
        while not self._stop.is_set():
            started = time.monotonic()
            self._process = subprocess.Popen(
                [sys.executable, "-m", "api.cli", "projector"],
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only sets a signal
            )
            while self._process.poll() is None and not self._stop.is_set():
                self._stop.wait(0.5)
            if self._stop.is_set():
                return
            if time.monotonic() - started > CHILD_HEALTHY_SECONDS:
                backoff = CHILD_BACKOFF_FIRST
            logger.warning(
                "the projector process exited with %s; restarting in %.0f s",
                self._process.returncode,
                backoff,
            )
            self._stop.wait(backoff)
            backoff = min(backoff * 2, CHILD_BACKOFF_MAX)

    def stop(self) -> None:
        self._stop.set()
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=GRACEFUL_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._thread.join(timeout=5)


async def _serve_until_signalled(app: object, config: Config) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stop.set)
    await hypercorn_serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
    logger.info("stopped")
