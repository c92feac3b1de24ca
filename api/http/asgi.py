"""The entry point of each hypercorn worker process (`--workers` above 1)."""

from __future__ import annotations

import os
from pathlib import Path

from starlette.applications import Starlette

from api.bootstrap import build
from api.http.app import create_app
from api.logs import configure_logging
from api.settings import Settings


def create() -> Starlette:
    """Build the container from the environment and wrap it in the app."""
    settings = Settings.from_environment(os.environ, home=Path.cwd())
    configure_logging(settings.log_format)
    return create_app(build(settings))
