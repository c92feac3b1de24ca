"""The `headwater` command."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from uuid import UUID

from api.bootstrap import build
from api.http.jsonio import parse_instant, rfc3339
from api.http.problems import ProblemError
from api.logs import configure_logging
from api.server import serve
from api.settings import Settings, SettingsError
from application.errors import ApplicationError
from domain.access import Role
from domain.errors import DomainError, InvalidInput
from domain.model import Actor

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
    return parser


def _serve(settings: Settings, arguments: argparse.Namespace) -> int:
    if arguments.workers < 1:
        print("headwater: --workers must be at least 1", file=sys.stderr)
        return 2
    return serve(
        settings, host=arguments.host, port=arguments.port, workers=arguments.workers
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


if __name__ == "__main__":
    sys.exit(main())
