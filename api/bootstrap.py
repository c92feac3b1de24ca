"""The composition root: builds every adapter and service from `Settings`."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from api.settings import Settings
from application.access import AccessTokens
from application.integrations import Integrations
from application.ports import Clock
from infrastructure.crypto import DeploymentKey, HmacFingerprints
from infrastructure.database import Database, StoreLocation, open_database
from infrastructure.eventstore import (
    EventStoreApplication,
    LibraryEventStore,
    library_environment,
)
from infrastructure.keys import SubjectKeyStore
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
    events: LibraryEventStore
    integrations: Integrations
    tokens: AccessTokens
    clock: Clock

    def close(self) -> None:
        self.events.close()
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
    keys = SubjectKeyStore(database, deployment_key)
    sealer = FieldSealer(keys, deployment_key)
    application = EventStoreApplication(
        library_environment(location, create_tables=False), sealer=sealer
    )
    events = LibraryEventStore(application)
    clock = clock or SystemClock()
    fingerprints = HmacFingerprints(deployment_key)
    return Container(
        settings=settings,
        location=location,
        database=database,
        deployment_key=deployment_key,
        keys=keys,
        events=events,
        integrations=Integrations(events),
        tokens=AccessTokens(events, fingerprints, clock),
        clock=clock,
    )
