"""`headwater serve`: the HTTP service on hypercorn."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import Final

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config
from hypercorn.run import run as hypercorn_run

from api.bootstrap import Container, build
from api.http.app import create_app
from api.settings import Settings

logger = logging.getLogger(__name__)

GRACEFUL_SECONDS: Final = 10
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
    """Serve HTTP; unless told not to, run the projections in this process too."""
    address = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
    if settings.public_base_url is None:
        settings = settings.model_copy(update={"public_base_url": address})
    container = build(settings)
    announce(container, address)
    config = hypercorn_config(host, port, workers)
    if projections:
        container.run_background()
    else:
        # Keys a restored backup brought back go before anything is served.
        container.compliance.destroy_erased_keys()
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
        container.close()
    return 0


async def _serve_until_signalled(app: object, config: Config) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stop.set)
    await hypercorn_serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
    logger.info("stopped")
