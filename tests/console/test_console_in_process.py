"""The console's sessions in process, on both stores, with a clock the tests
move: expiry of tokens and sessions, `find_usable`, and the Secure flag over
HTTPS."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from starlette.testclient import TestClient

from api.bootstrap import Container, build
from api.http.app import create_app
from api.settings import Settings
from domain.access import Role
from domain.model import Actor
from tests.console.conftest import csrf_of


class MovableClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def advance(self, by: timedelta) -> None:
        self.current += by


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock(datetime.now(UTC))


@pytest.fixture
def timed(settings: Settings, clock: MovableClock) -> Iterator[Container]:
    """The services over a fresh store, on the movable clock."""
    built = build(settings, clock=clock)
    try:
        yield built
    finally:
        built.close()


def issue(container: Container, role: Role, expires_at: datetime | None) -> str:
    issued = container.tokens.issue(
        name=f"{role} token", role=role, expires_at=expires_at, actor=Actor.system()
    )
    return issued.secret


@contextmanager
def signed_in(container: Container, secret: str) -> Iterator[TestClient]:
    """A client of the application holding a console session for `secret`."""
    application = create_app(container)
    with TestClient(application, follow_redirects=False) as client:
        form = client.get("/console/sign-in")
        answer = client.post(
            "/console/sign-in", data={"csrf": csrf_of(form.text), "token": secret}
        )
        assert answer.status_code == 303, answer.text
        yield client


def test_find_usable_gives_a_token_that_may_still_be_used(timed: Container) -> None:
    issued = timed.tokens.issue(
        name="ci", role=Role.AUDITOR, expires_at=None, actor=Actor.system()
    )

    found = timed.tokens.find_usable(issued.token.id)

    assert found is not None
    assert (found.id, found.role) == (issued.token.id, Role.AUDITOR)


def test_find_usable_gives_nothing_for_a_revoked_token(timed: Container) -> None:
    issued = timed.tokens.issue(
        name="ci", role=Role.AUDITOR, expires_at=None, actor=Actor.system()
    )
    timed.tokens.revoke(issued.token.id, actor=Actor.system())

    assert timed.tokens.find_usable(issued.token.id) is None


def test_find_usable_gives_nothing_for_an_expired_token(
    timed: Container, clock: MovableClock
) -> None:
    issued = timed.tokens.issue(
        name="ci",
        role=Role.AUDITOR,
        expires_at=clock.now() + timedelta(minutes=5),
        actor=Actor.system(),
    )

    clock.advance(timedelta(minutes=5))

    assert timed.tokens.find_usable(issued.token.id) is None


def test_find_usable_gives_nothing_for_an_unknown_id(timed: Container) -> None:
    assert timed.tokens.find_usable(uuid4()) is None


def test_the_session_cookie_is_secure_over_https(timed: Container) -> None:
    secret = issue(timed, Role.ADMIN, None)
    application = create_app(timed)
    with TestClient(application, base_url="https://testserver") as client:
        form = client.get("/console/sign-in")

        answer = client.post(
            "/console/sign-in",
            data={"csrf": csrf_of(form.text), "token": secret},
            follow_redirects=False,
        )

    header = next(
        h
        for h in answer.headers.get_list("set-cookie")
        if h.startswith("headwater_console=")
    )
    attributes = {part.strip().lower() for part in header.split(";")[1:]}
    assert {"secure", "httponly", "samesite=strict"} <= attributes


def test_a_session_ends_after_eight_hours(
    timed: Container, clock: MovableClock
) -> None:
    with signed_in(timed, issue(timed, Role.ADMIN, None)) as client:
        clock.advance(timedelta(hours=7, minutes=59))
        assert client.get("/console/status").status_code == 200

        clock.advance(timedelta(minutes=1))
        answer = client.get("/console/status")

    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/sign-in?next=%2Fconsole%2Fstatus"


def test_a_session_ends_when_its_token_expires(
    timed: Container, clock: MovableClock
) -> None:
    secret = issue(timed, Role.ANALYST, clock.now() + timedelta(hours=1))
    with signed_in(timed, secret) as client:
        clock.advance(timedelta(hours=1))
        answer = client.get("/console/status")

    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/console/sign-in")
