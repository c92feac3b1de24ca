"""The composition root: builds every adapter and service from `Settings`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from api.settings import Settings
from application.access import AccessTokens
from application.integrations import Integrations
from application.ports import CaptchaVerifier, Clock
from application.reading import ReadSide
from application.submissions import Decider, Intake, SubmissionWriter
from infrastructure.captcha import SiteverifyClient
from infrastructure.crypto import DeploymentKey, HmacFingerprints
from infrastructure.database import Database, StoreLocation, open_database
from infrastructure.eventlog import EventLog
from infrastructure.eventstore import (
    APPLICATION_NAME,
    EventStoreApplication,
    LibraryEventStore,
    library_environment,
)
from infrastructure.keys import SubjectKeyStore
from infrastructure.projections.base import Registry
from infrastructure.projections.catalog import NAMES, all_projections
from infrastructure.projections.queries import SqlReadModels
from infrastructure.projections.runner import (
    AdvisoryLeases,
    FileLeases,
    Leases,
    Projector,
    Supervisor,
)
from infrastructure.schema import prepare_store
from infrastructure.sealing import FieldSealer

logger = logging.getLogger(__name__)


class SystemClock:
    """The real time, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class Container:
    """Everything one process needs, built once and closed once."""

    settings: Settings
    location: StoreLocation
    database: Database
    deployment_key: DeploymentKey = field(repr=False)
    keys: SubjectKeyStore
    sealer: FieldSealer
    events: LibraryEventStore
    integrations: Integrations
    tokens: AccessTokens
    clock: Clock
    fingerprints: HmacFingerprints
    intake: Intake
    writer: SubmissionWriter
    captcha: CaptchaVerifier
    read_models_database: Database
    registry: Registry
    read_side: ReadSide
    event_log: EventLog
    #: Set after every write in this process, to wake its projections.
    recorded: threading.Event
    supervisors: list[Supervisor] = field(default_factory=list)

    def run_projections(self, names: Sequence[str] = NAMES) -> Supervisor:
        """Run projections in a background thread of this process."""
        supervisor = Supervisor(lambda: self.projector(names))
        supervisor.start()
        self.supervisors.append(supervisor)
        return supervisor

    def projector(self, names: Sequence[str] = NAMES) -> tuple[Projector, Leases]:
        leases: Leases
        if self.location.dialect == "postgres":
            leases = AdvisoryLeases(
                self.location, channel=f"{APPLICATION_NAME.lower()}_events"
            )
        else:
            assert self.location.path is not None
            leases = FileLeases(self.location.path.parent, self.recorded)
        return Projector(self.registry, self.events, leases, names), leases

    def close(self) -> None:
        for supervisor in self.supervisors:
            supervisor.stop()
        self.writer.close()
        self.events.close()
        if self.read_models_database is not self.database:
            self.read_models_database.close()
        self.database.close()


def deployment_key_for(settings: Settings) -> DeploymentKey:
    if settings.secret_key:
        return DeploymentKey(settings.secret_key)
    return DeploymentKey.load_or_generate(settings.var_directory)


def build(settings: Settings, *, clock: Clock | None = None) -> Container:
    """Prepare the store (idempotent) and wire every service to it.

    `clock` defaults to the system clock; tests pass one they can move.
    """
    location = StoreLocation.parse(settings.database_url, base=settings.home)
    deployment_key = deployment_key_for(settings)
    prepare_store(location)

    database = open_database(location)
    read_models_database = (
        database
        if location.read_models == location
        else open_database(location.read_models)
    )
    keys = SubjectKeyStore(database, deployment_key)
    sealer = FieldSealer(keys, deployment_key)
    recorded = threading.Event()
    application = EventStoreApplication(
        library_environment(location, create_tables=False),
        sealer=sealer,
        on_recorded=lambda _: recorded.set(),
    )
    events = LibraryEventStore(application)
    clock = clock or SystemClock()
    fingerprints = HmacFingerprints(deployment_key)
    decider = Decider(fingerprints, clock, trigger_limit=settings.trigger_limit)
    registry = Registry(read_models_database, all_projections())
    return Container(
        settings=settings,
        location=location,
        database=database,
        deployment_key=deployment_key,
        keys=keys,
        sealer=sealer,
        events=events,
        integrations=Integrations(events),
        tokens=AccessTokens(events, fingerprints, clock),
        clock=clock,
        fingerprints=fingerprints,
        intake=Intake(events),
        writer=SubmissionWriter(events, keys, decider),
        captcha=SiteverifyClient(settings.recaptcha_verify_url),
        read_models_database=read_models_database,
        registry=registry,
        read_side=ReadSide(SqlReadModels(registry, sealer), events, fingerprints),
        event_log=EventLog(events, sealer),
        recorded=recorded,
    )
