"""The `headwater` command."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO
from uuid import UUID

import orjson

from api.bootstrap import Container, build
from api.http.jsonio import parse_instant, rfc3339
from api.http.problems import ProblemError
from api.logs import configure_logging
from api.server import serve
from api.settings import Settings, SettingsError
from application.errors import ApplicationError
from domain.access import Role
from domain.errors import DomainError, InvalidInput
from domain.model import Actor
from infrastructure.chain import Checkpoint
from infrastructure.projections.catalog import NAMES
from infrastructure.projections.runner import Supervisor

logger = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    arguments = parser.parse_args(argv)
    try:
        settings = Settings.from_environment(os.environ, home=Path.cwd())
    except SettingsError as error:
        print(f"headwater: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format)
    try:
        result: int = arguments.run(settings, arguments)
    except InvalidInput as error:
        for problem in error.problems:
            print(f"headwater: {problem.field}: {problem.message}", file=sys.stderr)
        return 2
    except (ApplicationError, DomainError, ProblemError, ValueError) as error:
        print(f"headwater: {error}", file=sys.stderr)
        return 1
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="headwater",
        description="Public subscriber API endpoints, event-sourced.",
    )
    commands = parser.add_subparsers(required=True, metavar="command")

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument(
        "--no-projections",
        action="store_true",
        help="do not run the projections and the delivery worker in this process",
    )
    serve.set_defaults(run=_serve)

    tokens = commands.add_parser("tokens", help="manage access tokens")
    token_commands = tokens.add_subparsers(required=True, metavar="action")
    create = token_commands.add_parser(
        "create", help="issue a token; prints only the token"
    )
    create.add_argument("--name", required=True)
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--expires-at", help="RFC 3339 time, e.g. 2027-01-01T00:00:00Z")
    create.set_defaults(run=_tokens_create)
    listing = token_commands.add_parser("list", help="list tokens, without secrets")
    listing.set_defaults(run=_tokens_list)
    revoke = token_commands.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("token_id", type=UUID)
    revoke.set_defaults(run=_tokens_revoke)

    projector = commands.add_parser(
        "projector", help="run the projections alone (as standby if another holds them)"
    )
    projector.set_defaults(run=_projector)

    projections = commands.add_parser(
        "projections", help="projection status and rebuilds"
    )
    projection_commands = projections.add_subparsers(required=True, metavar="action")
    status = projection_commands.add_parser("status", help="positions and lag")
    status.set_defaults(run=_projections_status)
    rebuild = projection_commands.add_parser("rebuild", help="rebuild from zero")
    rebuild.add_argument("name", help=f"one of {', '.join(NAMES)}, or all")
    rebuild.set_defaults(run=_projections_rebuild)

    audit = commands.add_parser("audit", help="the tamper-evident log")
    audit_commands = audit.add_subparsers(required=True, metavar="action")
    verify = audit_commands.add_parser("verify", help="recompute the hash chain")
    verify.add_argument(
        "--checkpoint", help="HASH@POSITION kept from GET /admin/v1/audit/checkpoint"
    )
    verify.set_defaults(run=_audit_verify)

    events = commands.add_parser("events", help="the event log")
    event_commands = events.add_subparsers(required=True, metavar="action")
    export = event_commands.add_parser("export", help="stream the log as NDJSON")
    export.add_argument(
        "--after", type=int, default=0, help="start after this position"
    )
    export.add_argument("--output", help="write to this file instead of stdout")
    export.set_defaults(run=_events_export)
    return parser


def _serve(settings: Settings, arguments: argparse.Namespace) -> int:
    if arguments.workers < 1:
        print("headwater: --workers must be at least 1", file=sys.stderr)
        return 2
    return serve(
        settings,
        host=arguments.host,
        port=arguments.port,
        workers=arguments.workers,
        projections=not arguments.no_projections,
    )


def _tokens_create(settings: Settings, arguments: argparse.Namespace) -> int:
    expires_at = (
        parse_instant(arguments.expires_at, parameter="--expires-at")
        if arguments.expires_at
        else None
    )
    container = build(settings)
    try:
        issued = container.tokens.issue(
            name=arguments.name,
            role=Role(arguments.role),
            expires_at=expires_at,
            actor=Actor.command_line(),
        )
    finally:
        container.close()
    print(issued.secret)
    return 0


def _tokens_list(settings: Settings, _arguments: argparse.Namespace) -> int:
    container = build(settings)
    try:
        tokens = container.tokens.list()
    finally:
        container.close()
    print(f"{'id':36}  {'role':19}  {'state':8}  {'expires':27}  name")
    for token in tokens:
        state = "revoked" if token.revoked else "active"
        expires = rfc3339(token.expires_at) or "never"
        print(
            f"{token.id}  {token.role.value:19}  {state:8}  {expires:27}  {token.name}"
        )
    return 0


def _tokens_revoke(settings: Settings, arguments: argparse.Namespace) -> int:
    container = build(settings)
    try:
        token, _ = container.tokens.revoke(
            arguments.token_id, actor=Actor.command_line()
        )
    finally:
        container.close()
    print(f"revoked {token.id} ({token.name})")
    return 0


def _projector(settings: Settings, _arguments: argparse.Namespace) -> int:
    """The projections, the delivery worker and retention, without HTTP."""
    container = build(settings)
    stop = threading.Event()
    previous = {
        number: signal.signal(number, lambda *_: stop.set())
        for number in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        container.run_background()
        print(f"projecting {', '.join(NAMES)}; Ctrl+C to stop", file=sys.stderr)
        stop.wait()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        container.close()
    return 0


def signal_stop(supervisor: Supervisor) -> Callable[[], None]:
    """Stop `supervisor` on SIGINT or SIGTERM; answers a function that restores."""
    previous = {
        number: signal.signal(number, lambda *_: supervisor.stop(timeout=0))
        for number in (signal.SIGINT, signal.SIGTERM)
    }

    def restore() -> None:
        for number, handler in previous.items():
            signal.signal(number, handler)

    return restore


def _projections_status(settings: Settings, _arguments: argparse.Namespace) -> int:
    container = build(settings)
    try:
        states = container.read_side.status()
    finally:
        container.close()
    print(f"{'projection':14} {'position':>10} {'head':>10} {'lag':>8}  rebuild")
    for state in states:
        rebuild = state["rebuild"]
        note = f"at {rebuild['position']} (lag {rebuild['lag']})" if rebuild else "-"
        print(
            f"{state['name']:14} {state['position']:>10} {state['headPosition']:>10}"
            f" {state['lag']:>8}  {note}"
        )
    return 0


def _projections_rebuild(settings: Settings, arguments: argparse.Namespace) -> int:
    names = list(NAMES) if arguments.name == "all" else [arguments.name]
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        choices = ", ".join(NAMES)
        print(
            f"headwater: no projection {unknown[0]!r}; use one of {choices} or all",
            file=sys.stderr,
        )
        return 2
    container = build(settings)
    try:
        for name in names:
            container.read_side.rebuild(name)
        # Rebuild here if no running process holds these projections; else
        # the holder rebuilds and this only watches.
        supervisor = container.run_projections(names)
        restore = signal_stop(supervisor)
        try:
            watch_rebuild(container, names)
        finally:
            restore()
    finally:
        container.close()
    return 0


def watch_rebuild(
    container: Container, names: list[str], *, out: TextIO = sys.stderr
) -> None:
    """A progress bar with events/s and ETA until every rebuild has switched."""
    started = time.monotonic()
    first: int | None = None
    while True:
        states = [s for s in container.read_side.status() if s["name"] in names]
        pending = [s for s in states if s["rebuild"] is not None]
        head = max((s["headPosition"] for s in states), default=0)
        if not pending:
            out.write(
                f"\rrebuilt {', '.join(names)} through position {head}{' ' * 30}\n"
            )
            out.flush()
            return
        done = min(s["rebuild"]["position"] for s in pending)
        first = done if first is None else first
        elapsed = max(time.monotonic() - started, 1e-6)
        rate = (done - first) / elapsed
        eta = (head - done) / rate if rate > 0 else float("inf")
        share = done / head if head else 1.0
        bar = "#" * int(share * 30)
        eta_text = (
            "--:--"
            if eta == float("inf")
            else f"{int(eta) // 60:02d}:{int(eta) % 60:02d}"
        )
        out.write(
            f"\r[{bar:<30}] {share:6.1%} {done}/{head} events"
            f"  {rate:,.0f} events/s  ETA {eta_text}"
        )
        out.flush()
        time.sleep(0.5)


def _audit_verify(settings: Settings, arguments: argparse.Namespace) -> int:
    """Check every link; exit 1 and name the first position that fails."""
    checkpoint = (
        Checkpoint.parse(arguments.checkpoint) if arguments.checkpoint else None
    )
    container = build(settings)
    try:
        chain = container.compliance.chain
        head = container.events.head()
        started = time.monotonic()

        def progress(position: int) -> None:
            elapsed = max(time.monotonic() - started, 1e-6)
            share = position / head if head else 1.0
            sys.stderr.write(
                f"\r[{'#' * int(share * 30):<30}] {share:6.1%} {position}/{head} events"
                f"  {position / elapsed:,.0f} events/s"
            )
            sys.stderr.flush()

        result = chain.verify(checkpoint=checkpoint, progress=progress)
    finally:
        container.close()
    sys.stderr.write("\n")
    if result.ok:
        print(f"ok: every link through position {result.checked_through} verifies")
        if checkpoint is not None:
            print(f"ok: the chain matches the checkpoint at {checkpoint.position}")
        return 0
    print(
        f"FAILED at position {result.first_bad_position}: {result.reason}; "
        f"links verify through position {result.checked_through}"
    )
    return 1


def _events_export(settings: Settings, arguments: argparse.Namespace) -> int:
    container = build(settings)
    try:
        target = open(arguments.output, "wb") if arguments.output else sys.stdout.buffer  # noqa: SIM115
        try:
            for line in container.event_log.lines(after=arguments.after, limit=None):
                target.write(orjson.dumps(line) + b"\n")
        finally:
            if arguments.output:
                target.close()
            else:
                target.flush()
    finally:
        container.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
