"""The endpoint integration: a public URL and what submissions to it may do."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Final, Literal
from uuid import UUID, uuid4, uuid5

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from domain.configuration import Configuration, parse_configuration
from domain.errors import InvalidInput, Problem, StateConflict
from domain.model import SECRET, Actor, Aggregate, CreationEvent, DomainEvent

INTEGRATION_TYPE: Final = "v5-api-endpoint-unauthenticated"
INTEGRATION_TYPES: Final = (INTEGRATION_TYPE,)

#: 24 random bytes: 192 bits, written as 32 URL-safe characters.
ENDPOINT_ID_BYTES: Final = 24
ENDPOINT_ID_FORMAT: Final = re.compile(r"^[A-Za-z0-9_-]{22,64}$")
ENDPOINT_NAMESPACE: Final = UUID("5b0f1c7e-8d7a-4c1e-9a53-3f3f0d1d2a10")


def new_endpoint_id() -> str:
    """A fresh, unguessable endpoint id."""
    return secrets.token_urlsafe(ENDPOINT_ID_BYTES)


def is_endpoint_id(value: str) -> bool:
    # fullmatch: `$` alone would also accept a trailing newline.
    return bool(ENDPOINT_ID_FORMAT.fullmatch(value))


class Status(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"


class FieldChange(BaseModel):
    """A field's value before and after a change."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    before: Any = Field(default=None, alias="from")
    after: Any = Field(default=None, alias="to")


@dataclass(frozen=True)
class SecretUpdate:
    """What a save does to the CAPTCHA secret: keep it, set it, or clear it."""

    action: Literal["keep", "set", "clear"]
    value: str | None = None

    @classmethod
    def keep(cls) -> SecretUpdate:
        return cls("keep")

    def applied_to(self, current: SecretStr | None) -> SecretStr | None:
        if self.action == "keep":
            return current
        if self.action == "clear" or not self.value:
            return None
        return SecretStr(self.value)


class IntegrationCreated(CreationEvent):
    name: str
    integration_type: str
    endpoint_id: str
    actor: Actor

    @classmethod
    def aggregate_type(cls) -> type[Aggregate]:
        return Integration


class IntegrationSaved(DomainEvent):
    """The first save: the configuration from now on, and the secret if any."""

    configuration: Configuration
    recaptcha_secret: Annotated[SecretStr | None, SECRET] = None
    actor: Actor


class IntegrationUpdated(DomainEvent):
    """A later save: the fields that changed, and the secret when it changed."""

    changes: dict[str, FieldChange]
    secret_change: Literal["set", "changed", "cleared"] | None = None
    recaptcha_secret: Annotated[SecretStr | None, SECRET] = None
    actor: Actor


class IntegrationActivated(DomainEvent):
    actor: Actor


class IntegrationDeactivated(DomainEvent):
    actor: Actor


class EndpointRotated(DomainEvent):
    previous_endpoint_id: str
    endpoint_id: str
    actor: Actor


class Integration(Aggregate):
    """An endpoint integration and its lifecycle.

    `configuration_version` is the version at which the configuration was last
    saved; submissions record it so that the audit can tell which rules applied.
    """

    name: str
    integration_type: str
    endpoint_id: str
    status: Status
    saved: bool
    configuration: Configuration
    recaptcha_secret: SecretStr | None
    configuration_version: int | None

    @classmethod
    def create(
        cls, *, name: str, integration_type: str, endpoint_id: str, actor: Actor
    ) -> Integration:
        problems = []
        if integration_type not in INTEGRATION_TYPES:
            problems.append(
                Problem(
                    "type",
                    "enum",
                    f"unknown integration type {integration_type!r}; "
                    f"use {INTEGRATION_TYPE}",
                )
            )
        if not 1 <= len(name) <= 200:
            problems.append(Problem("name", "length", "must be 1 to 200 characters"))
        if problems:
            raise InvalidInput(problems)
        return cls._start(
            IntegrationCreated,
            id=uuid4(),
            name=name,
            integration_type=integration_type,
            endpoint_id=endpoint_id,
            actor=actor,
        )

    @property
    def is_active(self) -> bool:
        return self.status is Status.ACTIVE

    def save_changes(
        self, raw: Mapping[str, Any], *, secret: SecretUpdate, actor: Actor
    ) -> None:
        """Validate and store a whole configuration; record only what changed."""
        new_secret = secret.applied_to(self.recaptcha_secret)
        configuration = parse_configuration(raw, secret_set=new_secret is not None)
        if not self.saved:
            self._record(
                IntegrationSaved,
                configuration=configuration,
                recaptcha_secret=new_secret,
                actor=actor,
            )
            return
        changes = _differences(self.configuration, configuration)
        secret_change = _secret_change(self.recaptcha_secret, new_secret)
        if not changes and secret_change is None:
            return
        self._record(
            IntegrationUpdated,
            changes=changes,
            secret_change=secret_change,
            recaptcha_secret=new_secret
            if secret_change in ("set", "changed")
            else None,
            actor=actor,
        )

    def activate(self, *, actor: Actor) -> None:
        if not self.saved:
            msg = (
                "the integration has never been saved; "
                "save its configuration before activating it"
            )
            raise StateConflict(msg)
        if self.is_active:
            return
        self._record(IntegrationActivated, actor=actor)

    def deactivate(self, *, actor: Actor) -> None:
        if not self.is_active:
            return
        self._record(IntegrationDeactivated, actor=actor)

    def rotate_endpoint(self, *, endpoint_id: str, actor: Actor) -> None:
        self._record(
            EndpointRotated,
            previous_endpoint_id=self.endpoint_id,
            endpoint_id=endpoint_id,
            actor=actor,
        )

    def when(self, event: DomainEvent) -> None:
        match event:
            case IntegrationCreated():
                self.name = event.name
                self.integration_type = event.integration_type
                self.endpoint_id = event.endpoint_id
                self.status = Status.INACTIVE
                self.saved = False
                self.configuration = Configuration(name=event.name)
                self.recaptcha_secret = None
                self.configuration_version = None
            case IntegrationSaved():
                self.saved = True
                self.configuration = event.configuration
                self.name = event.configuration.name
                self.recaptcha_secret = event.recaptcha_secret
                self.configuration_version = event.originator_version
            case IntegrationUpdated():
                self.configuration = _with_changes(self.configuration, event.changes)
                self.name = self.configuration.name
                if event.secret_change == "cleared":
                    self.recaptcha_secret = None
                elif event.secret_change is not None:
                    self.recaptcha_secret = event.recaptcha_secret
                self.configuration_version = event.originator_version
            case IntegrationActivated():
                self.status = Status.ACTIVE
            case IntegrationDeactivated():
                self.status = Status.INACTIVE
            case EndpointRotated():
                self.endpoint_id = event.endpoint_id
            case _:
                raise self._unexpected(event)


def _differences(before: Configuration, after: Configuration) -> dict[str, FieldChange]:
    old, new = before.as_json(), after.as_json()
    return {
        name: FieldChange(before=old[name], after=new[name])
        for name in new
        if old[name] != new[name]
    }


def _with_changes(
    configuration: Configuration, changes: Mapping[str, FieldChange]
) -> Configuration:
    merged = configuration.as_json()
    merged.update({name: change.after for name, change in changes.items()})
    return Configuration.model_validate(merged)


def _secret_change(
    before: SecretStr | None, after: SecretStr | None
) -> Literal["set", "changed", "cleared"] | None:
    if before is None and after is None:
        return None
    if before is None:
        return "set"
    if after is None:
        return "cleared"
    # As bytes: compare_digest refuses str holding anything but ASCII.
    unchanged = secrets.compare_digest(
        before.get_secret_value().encode(), after.get_secret_value().encode()
    )
    if unchanged:
        return None
    return "changed"


class EndpointIssued(CreationEvent):
    integration_id: UUID

    @classmethod
    def aggregate_type(cls) -> type[Aggregate]:
        return Endpoint


class Endpoint(Aggregate):
    """Points an endpoint id at its integration, so that a submission finds its
    integration at once. The integration says whether the endpoint is current.
    """

    integration_id: UUID

    @staticmethod
    def id_for(endpoint_id: str) -> UUID:
        return uuid5(ENDPOINT_NAMESPACE, endpoint_id)

    @classmethod
    def issue(cls, *, endpoint_id: str, integration_id: UUID) -> Endpoint:
        return cls._start(
            EndpointIssued, id=cls.id_for(endpoint_id), integration_id=integration_id
        )

    def when(self, event: DomainEvent) -> None:
        match event:
            case EndpointIssued():
                self.integration_id = event.integration_id
            case _:
                raise self._unexpected(event)
