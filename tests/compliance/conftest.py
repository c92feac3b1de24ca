"""Fixtures for the compliance tests (CONTRACT 2.6 and 3.1, docs/compliance.md).

A person submits through a public endpoint, from a distinctive address and
with distinctive personal values; the admin API erases, exports and checks
the chain. What is left is then read straight from the store, table by table
and, on SQLite, byte by byte; the `headwater` command runs against the same
store. The service's clock is the real time plus an offset that the
retention tests move.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import httpx2
import orjson
import pytest
from starlette.testclient import TestClient

from api.bootstrap import Container, build
from api.http.app import create_app
from api.settings import Settings
from domain.access import Role
from domain.model import Actor
from infrastructure.database import Database
from infrastructure.projections.catalog import NAMES
from tests.conftest import TEST_SECRET_KEY
from tests.support.server import environment, headwater_command

ADMIN: Final = "/admin/v1"
INTEGRATION_TYPE: Final = "v5-api-endpoint-unauthenticated"
ACTIVITY: Final = 42
COMMAND_SECONDS: Final = 60
STORES: Final = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]

#: Where the person submits from: request metadata, sealed under the day's key.
CLIENT_IP: Final = "203.0.113.77"
USER_AGENT: Final = "ComplianceProbe/3.1 (erasure-tests)"

#: The person, as they submit themselves.
EMAIL: Final = "Ottoline.Quarrendon@Example.net"
PHONE: Final = "+44 20 7946 0958"
PHONE_E164: Final = "+442079460958"
REF: Final = "crm-quarrendon-5501"
FIRSTNAME: Final = "Ottoline"
LASTNAME: Final = "Quarrendon"
CONSENT: Final = "Newsletter consent 7731 given by Ottoline"
PAGE: Final = "/offers/quarrendon-2231"
RECEIPT: Final = "receipt-quarrendon-6610"

#: An endpoint that creates and updates profiles, logs events and triggers
#: ACTIVITY. The service has no webhook channel, so deliveries stay pending.
CONFIGURATION: Final[dict[str, Any]] = {
    "identifyBy": "email",
    "allowProfileCreation": True,
    "allowProfileUpdates": True,
    "allowEventLogging": True,
    "allowMessages": True,
    "triggerActivityId": ACTIVITY,
    "detailedResponses": True,
}

Json = dict[str, Any]


def signup(
    email: str = EMAIL,
    *,
    phone: str | None = PHONE,
    ref: str | None = REF,
    firstname: str = FIRSTNAME,
    lastname: str = LASTNAME,
) -> list[Json]:
    """A profile with consent, a logged event and a message: every kind of
    personal value a submission can carry."""
    profile: Json = {
        "email": email,
        "firstname": firstname,
        "lastname": lastname,
        "consent": {"text": CONSENT, "given": True},
    }
    if phone is not None:
        profile["phone"] = phone
    if ref is not None:
        profile["ref"] = ref
    return [
        {"profile": profile},
        {"event": {"type": "signup", "data": {"page": PAGE}}},
        {"message": {"activityId": ACTIVITY, "requestContent": {"note": RECEIPT}}},
    ]


class MovableClock:
    """The real time, moved by an offset: a retention test jumps the
    service's clock forward while events keep their real timestamps."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def move_to(self, moment: datetime) -> None:
        self.offset = moment - datetime.now(UTC)


@dataclass(frozen=True)
class Submitted:
    """A person's accepted submission, as its detailed answer named it."""

    subscriber_id: str
    submission_id: str
    integration_id: str
    position: int

    @property
    def key_id(self) -> str:
        """The id of the subscriber's key in `subject_keys`."""
        return self.subscriber_id.replace("-", "")


class Service:
    """Headwater as these tests drive it: the admin API, the public endpoint
    and the container behind both."""

    def __init__(
        self, container: Container, admin: TestClient, public: TestClient
    ) -> None:
        self.container = container
        self.admin = admin
        self.public = public
        self._integration: Json | None = None

    def open_endpoint(self, configuration: Json = CONFIGURATION) -> Json:
        created = self.admin.post(
            f"{ADMIN}/integrations", json={"name": "Signup", "type": INTEGRATION_TYPE}
        )
        assert created.status_code == 201, created.text
        integration_id = created.json()["id"]
        saved = self.admin.put(
            f"{ADMIN}/integrations/{integration_id}",
            json={"name": "Signup", **configuration},
        )
        assert saved.status_code == 200, saved.text
        activated = self.admin.post(f"{ADMIN}/integrations/{integration_id}/activate")
        assert activated.status_code == 200, activated.text
        integration: Json = activated.json()
        return integration

    @property
    def integration(self) -> Json:
        """The endpoint every submission of a test goes to, opened once."""
        if self._integration is None:
            self._integration = self.open_endpoint()
        return self._integration

    def submit(self, body: Any) -> Json:
        """Post to the production endpoint; it must accept."""
        answer = self.public.post(
            f"/v5/endpoints/{self.integration['endpointId']}", json=body
        )
        assert answer.status_code == 200, answer.text
        accepted: Json = answer.json()
        return accepted

    def subscribe(self, body: list[Json] | None = None) -> Submitted:
        """Submit a signup (the person's, unless told) and wait until every
        projection has applied it."""
        answer = self.submit(signup() if body is None else body)
        self.caught_up(answer["position"])
        return Submitted(
            subscriber_id=answer["results"][0]["subscriberId"],
            submission_id=answer["submissionId"],
            integration_id=self.integration["id"],
            position=answer["position"],
        )

    def erase(
        self, subscriber_id: str, *, headers: dict[str, str] | None = None
    ) -> httpx2.Response:
        return self.admin.post(
            f"{ADMIN}/subscribers/{subscriber_id}/erase",
            json={"reason": "request by the person, by email of 2026-11-30"},
            headers=headers,
        )

    def caught_up(self, position: int) -> None:
        """Wait until every projection has applied `position`."""
        for name in NAMES:
            self.container.read_side.wait_for(name, position, timeout=30)

    def event_log(self, *types: str) -> list[Json]:
        answer = self.admin.get(
            f"{ADMIN}/events", params={"type": ",".join(types)} if types else None
        )
        assert answer.status_code == 200, answer.text
        return [orjson.loads(line) for line in answer.text.splitlines() if line]

    def audit(self, **query: Any) -> list[Json]:
        answer = self.admin.get(f"{ADMIN}/audit", params={"limit": 500, **query})
        assert answer.status_code == 200, answer.text
        items: list[Json] = answer.json()["items"]
        return items

    def deliveries(self, subscriber_id: str, **query: Any) -> list[Json]:
        answer = self.admin.get(
            f"{ADMIN}/deliveries", params={"subscriberId": subscriber_id, **query}
        )
        assert answer.status_code == 200, answer.text
        items: list[Json] = answer.json()["items"]
        return items

    def headers_of(self, role: Role) -> dict[str, str]:
        """Authorization for a new token of `role`."""
        issued = self.container.tokens.issue(
            name=f"a {role.value}", role=role, expires_at=None, actor=Actor.system()
        )
        return {"Authorization": f"Bearer {issued.secret}"}


def marked_erased(read: Json) -> bool:
    """Whether an event-log line or history entry says `erased: true`, at
    its top level or in its data."""
    return read.get("erased") is True or read.get("data", {}).get("erased") is True


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def container(settings: Settings, clock: MovableClock) -> Iterator[Container]:
    """The services over a fresh store, with projections running in-process
    and a clock the test may move."""
    built = build(settings, clock=clock)
    built.run_projections()
    try:
        yield built
    finally:
        built.close()


def browser(container: Container) -> TestClient:
    """A browser at CLIENT_IP with USER_AGENT, carrying no credentials."""
    return TestClient(
        create_app(container),
        client=(CLIENT_IP, 41000),
        headers={"User-Agent": USER_AGENT},
    )


@pytest.fixture
def public(container: Container) -> Iterator[TestClient]:
    with browser(container) as client:
        yield client


@pytest.fixture
def service(container: Container, admin: TestClient, public: TestClient) -> Service:
    return Service(container, admin, public)


@pytest.fixture
def person(service: Service) -> Submitted:
    """The person, signed up with every kind of personal value."""
    return service.subscribe()


@pytest.fixture
def erasure(service: Service, person: Submitted) -> Json:
    """The answer to erasing the person, once every projection applied it."""
    return erase_and_wait(service, person)


# -- a store shared by the tests of a module that only read what it holds


@pytest.fixture(scope="module", params=STORES)
def shared_settings(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """A fresh store of each kind for one module."""
    home = tmp_path_factory.mktemp("shared")
    if request.param == "sqlite":
        url = f"sqlite:///{home}/var/headwater.db"
    else:
        database: str = request.getfixturevalue("postgres_database")
        url = f"{database}?schema=s_{uuid.uuid4().hex[:12]}"
    return Settings(database_url=url, secret_key=TEST_SECRET_KEY, home=home)


@dataclass(frozen=True)
class World:
    """A shared store: the service over it, the person, and (once erased)
    the answer to their erasure."""

    service: Service
    person: Submitted
    erasure: Json


def erase_and_wait(service: Service, person: Submitted) -> Json:
    """Erase the person and wait until every projection applied it."""
    answer = service.erase(person.subscriber_id)
    assert answer.status_code == 200, answer.text
    erased: Json = answer.json()
    service.caught_up(erased["position"])
    return erased


@contextmanager
def running(settings: Settings) -> Iterator[Service]:
    """The service over `settings`, as the function-scoped fixtures build it."""
    built = build(settings, clock=MovableClock())
    built.run_projections()
    try:
        issued = built.tokens.issue_first_admin()
        assert issued is not None
        with TestClient(create_app(built)) as admin, browser(built) as public:
            admin.headers["Authorization"] = f"Bearer {issued.secret}"
            yield Service(built, admin, public)
    finally:
        built.close()


# -- the store, read directly


def events_table(container: Container) -> tuple[str, str]:
    """The events table and its position column, as the library names them."""
    if container.database.dialect == "sqlite":
        return "stored_events", "rowid"
    return "headwater_events", "notification_id"


def table_names(database: Database, schema: str) -> list[str]:
    """Every table of a database (SQLite) or of the store's schema."""
    with database.reading() as cursor:
        if database.dialect == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        else:
            cursor.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = %s AND table_type = 'BASE TABLE'",
                (schema,),
            )
        return sorted(row[0] for row in cursor.fetchall())


def databases(container: Container) -> list[Database]:
    """The events database and, where it is another one, the read models'."""
    if container.read_models_database is container.database:
        return [container.database]
    return [container.database, container.read_models_database]


def every_row(container: Container) -> dict[str, bytes]:
    """Every value of every row of every table the service writes, as bytes,
    by table name."""
    dump: dict[str, bytes] = {}
    for database in databases(container):
        for table in table_names(database, container.location.schema):
            with database.reading() as cursor:
                cursor.execute(f'SELECT * FROM "{table}"')
                rows = cursor.fetchall()
            dump[table] = b"\n".join(as_bytes(value) for row in rows for value in row)
    return dump


def as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode()


def store_files(container: Container) -> list[Path]:
    """On SQLite, both database files and their write-ahead logs."""
    paths = [container.location.path, container.location.read_models.path]
    files = []
    for path in paths:
        assert path is not None
        files += [path, path.with_name(f"{path.name}-wal")]
    return files


def raw_files(container: Container) -> bytes:
    """The bytes of every SQLite file that exists, end to end."""
    return b"".join(
        path.read_bytes() for path in store_files(container) if path.exists()
    )


def wrapped_key(container: Container, subject_id: str) -> bytes | None:
    """A key's row in `subject_keys`, as stored (wrapped), if it is there."""
    with container.database.reading() as cursor:
        cursor.execute(
            "SELECT wrapped_key FROM subject_keys WHERE subject_id = %s", (subject_id,)
        )
        row = cursor.fetchone()
    return None if row is None else bytes(row[0])


# -- the command line


@dataclass(frozen=True)
class Command:
    """`headwater` run as an operator would, against the test's store."""

    folder: Path
    database_url: str

    def run(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: PLW1510 - callers check the exit code
            [*headwater_command(), *arguments],
            cwd=self.folder,
            env=environment(
                {
                    "HEADWATER_DATABASE_URL": self.database_url,
                    "HEADWATER_SECRET_KEY": TEST_SECRET_KEY,
                }
            ),
            capture_output=True,
            text=True,
            timeout=COMMAND_SECONDS,
        )


@pytest.fixture
def headwater(settings: Settings, tmp_path: Path) -> Command:
    folder = tmp_path / "operator"
    folder.mkdir()
    return Command(folder, settings.database_url)
