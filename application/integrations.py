"""Use cases for endpoint integrations: create, configure, switch on and off."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from application.errors import ConcurrencyConflict, NotFound, VersionMismatch
from application.ports import EventStore
from domain.integration import (
    Endpoint,
    Integration,
    IntegrationCreated,
    SecretUpdate,
    is_endpoint_id,
    new_endpoint_id,
)
from domain.model import Actor, DomainEvent

logger = logging.getLogger(__name__)

#: How often a command without `If-Match` retries after losing a race.
ATTEMPTS: Final = 5
PAGE: Final = 1000


@dataclass(frozen=True)
class Changed:
    """An integration after a command, and the position of the last event it
    recorded (None when the command changed nothing)."""

    integration: Integration
    position: int | None


class Integrations:
    """Commands and queries on endpoint integrations."""

    def __init__(self, store: EventStore) -> None:
        self._store = store

    def create(self, *, name: str, integration_type: str, actor: Actor) -> Changed:
        endpoint_id = new_endpoint_id()
        integration = Integration.create(
            name=name,
            integration_type=integration_type,
            endpoint_id=endpoint_id,
            actor=actor,
        )
        endpoint = Endpoint.issue(
            endpoint_id=endpoint_id, integration_id=integration.id
        )
        position = self._store.save(integration, endpoint)
        logger.info("created integration %s", integration.id)
        return Changed(integration, position)

    def get(self, integration_id: UUID) -> Integration:
        integration = self._store.find(integration_id, Integration)
        if integration is None:
            raise NotFound(f"no integration {integration_id}")
        return integration

    def get_as_of(self, integration_id: UUID, at: datetime) -> Integration:
        integration = self._store.find_as_of(integration_id, Integration, at)
        if integration is None:
            raise NotFound(
                f"integration {integration_id} did not exist at {at.isoformat()}"
            )
        return integration

    def history(self, integration_id: UUID) -> list[DomainEvent]:
        events = self._store.history(integration_id)
        if not events or not isinstance(events[0], IntegrationCreated):
            raise NotFound(f"no integration {integration_id}")
        return events

    def list(self) -> list[Integration]:
        """Every integration, oldest first."""
        integrations = []
        after = 0
        while True:
            page = self._store.read(after=after, limit=PAGE, types=[IntegrationCreated])
            for recorded in page:
                integration = self._store.find(
                    recorded.event.originator_id, Integration
                )
                if integration is not None:
                    integrations.append(integration)
            if len(page) < PAGE:
                return integrations
            after = page[-1].position

    def find_by_endpoint(self, endpoint_id: str) -> Integration | None:
        """The integration whose current endpoint is `endpoint_id`, if any."""
        if not is_endpoint_id(endpoint_id):
            return None
        endpoint = self._store.find(Endpoint.id_for(endpoint_id), Endpoint)
        if endpoint is None:
            return None
        integration = self._store.find(endpoint.integration_id, Integration)
        if integration is None or integration.endpoint_id != endpoint_id:
            return None
        return integration

    def save_changes(
        self,
        integration_id: UUID,
        configuration: Mapping[str, Any],
        *,
        secret: SecretUpdate,
        expected_version: int | None,
        actor: Actor,
    ) -> Changed:
        return self._change(
            integration_id,
            lambda i: i.save_changes(configuration, secret=secret, actor=actor),
            expected_version=expected_version,
        )

    def activate(self, integration_id: UUID, *, actor: Actor) -> Changed:
        return self._change(integration_id, lambda i: i.activate(actor=actor))

    def deactivate(self, integration_id: UUID, *, actor: Actor) -> Changed:
        return self._change(integration_id, lambda i: i.deactivate(actor=actor))

    def rotate_endpoint(self, integration_id: UUID, *, actor: Actor) -> Changed:
        endpoint_id = new_endpoint_id()

        def rotate(integration: Integration) -> list[Endpoint]:
            integration.rotate_endpoint(endpoint_id=endpoint_id, actor=actor)
            return [
                Endpoint.issue(endpoint_id=endpoint_id, integration_id=integration.id)
            ]

        return self._change(integration_id, rotate)

    def _change(
        self,
        integration_id: UUID,
        command: Callable[[Integration], Any],
        *,
        expected_version: int | None = None,
    ) -> Changed:
        """Run `command` on fresh state, retrying when another writer won.

        With an expected version (`If-Match`), losing a race is a mismatch:
        the caller decided on a version that no longer exists.
        """
        for _ in range(ATTEMPTS):
            integration = self.get(integration_id)
            if expected_version is not None and integration.version != expected_version:
                raise VersionMismatch(
                    expected=expected_version, current=integration.version
                )
            others = command(integration) or []
            if not integration.has_pending_events:
                return Changed(integration, None)
            try:
                position = self._store.save(integration, *others)
            except ConcurrencyConflict:
                if expected_version is not None:
                    current = self.get(integration_id).version
                    raise VersionMismatch(
                        expected=expected_version, current=current
                    ) from None
                continue
            return Changed(integration, position)
        msg = f"integration {integration_id} kept changing; try again"
        raise ConcurrencyConflict(msg)
