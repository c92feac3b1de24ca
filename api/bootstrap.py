"""The composition root: builds every adapter and service from `Settings`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from api.settings import Settings
from application.access import AccessTokens
from application.compliance import Compliance
from application.deliveries import Deliveries, DeliveryWorker
from application.integrations import Integrations
from application.ports import CaptchaVerifier, Clock
from application.reading import ReadSide
from application.submissions import Decider, Intake, SubmissionWriter
from infrastructure.captcha import SiteverifyClient
from infrastructure.chain import ChainVerifier
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
from infrastructure.projections.deliveries import SqlOutbox
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
from infrastructure.webhook import WebhookChannel

logger = logging.getLogger(__name__)

RETENTION_INTERVAL_SECONDS: Final = 3600.0


class RetentionTask:
    """Destroys expired request-metadata keys now, then every hour."""

    def __init__(self, compliance: Compliance) -> None:
        self._compliance = compliance

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self._compliance.enforce_retention()
            stop.wait(RETENTION_INTERVAL_SECONDS)

    def close(self) -> None:
        return None


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
    outbox: SqlOutbox
    deliveries: Deliveries
    channel: WebhookChannel | None
    #: Set after every write in this process, to wake its projections.
    recorded: threading.Event
    #: Set when this process's projections moved, to wake its delivery worker.
    projected: threading.Event
    compliance: Compliance
    supervisors: list[Supervisor] = field(default_factory=list)

    def run_projections(self, names: Sequence[str] = NAMES) -> Supervisor:
        """Run projections in a background thread of this process."""
        supervisor = Supervisor(lambda: self.projector(names))
        supervisor.start()
        self.supervisors.append(supervisor)
        return supervisor

    def run_deliveries(self) -> Supervisor | None:
        """Run a delivery worker in this process, if a channel is configured.

        Without one, deliveries stay pending: `/readyz` and the status say so.
        """
        if self.channel is None:
            logger.warning("no delivery channel is configured; deliveries stay pending")
            return None
        supervisor = Supervisor(self.delivery_worker, name="delivery worker")
        supervisor.start()
        self.supervisors.append(supervisor)
        return supervisor

    def run_background(self) -> None:
        """What `serve` and `projector` run beside their main work: the
        projections, the delivery worker and the retention of metadata.

        First, keys of erased subscribers that a restored backup brought back
        are destroyed again, before anything can read them.
        """
        self.compliance.destroy_erased_keys()
        self.run_projections()
        self.run_deliveries()
        supervisor = Supervisor(
            lambda: RetentionTask(self.compliance), name="metadata retention"
        )
        supervisor.start()
        self.supervisors.append(supervisor)

    def projector(self, names: Sequence[str] = NAMES) -> Projector:
        leases: Leases
        if self.location.dialect == "postgres":
            leases = AdvisoryLeases(
                self.location, channel=f"{APPLICATION_NAME.lower()}_events"
            )
        else:
            assert self.location.path is not None
            leases = FileLeases(self.location.path.parent, self.recorded)
        return Projector(
            self.registry, self.events, leases, names, on_progress=self.projected.set
        )

    def delivery_worker(self) -> DeliveryWorker:
        assert self.channel is not None
        return DeliveryWorker(
            store=self.events,
            outbox=self.outbox,
            channel=self.channel,
            opener=self.sealer,
            clock=self.clock,
            max_attempts=self.settings.delivery_max_attempts,
            lease_seconds=self.settings.delivery_lease_seconds,
            wake=self.projected,
        )

    def close(self) -> None:
        for supervisor in self.supervisors:
            supervisor.stop()
        self.writer.close()
        if self.channel is not None:
            self.channel.close()
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
        else open_database(location.read_models, rebuildable=True)
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
    outbox = SqlOutbox(registry)
    deliveries = Deliveries(events, outbox)
    read_side = ReadSide(SqlReadModels(registry, sealer), events, fingerprints)
    channel = (
        WebhookChannel(settings.delivery_webhook_url, settings.signing_secrets)
        if settings.delivery_webhook_url
        else None
    )
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
        read_side=read_side,
        event_log=EventLog(events, sealer),
        outbox=outbox,
        deliveries=deliveries,
        channel=channel,
        recorded=recorded,
        projected=threading.Event(),
        compliance=Compliance(
            store=events,
            keys=keys,
            fingerprints=fingerprints,
            deliveries=deliveries,
            read_side=read_side,
            chain=chain_verifier(location, database),
            clock=clock,
            metadata_days=settings.request_metadata_days,
            compact=lambda: _compact(database, read_models_database),
        ),
    )


def chain_verifier(location: StoreLocation, database: Database) -> ChainVerifier:
    if location.dialect == "sqlite":
        return ChainVerifier(database, "stored_events", "rowid")
    return ChainVerifier(
        database, f"{APPLICATION_NAME.lower()}_events", "notification_id"
    )


def _compact(database: Database, read_models: Database) -> None:
    database.compact()
    if read_models is not database:
        read_models.compact()
