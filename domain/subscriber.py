"""The subscriber: a profile, its list memberships, and the messages it was sent.

Every value a subscriber's events carry about the person is personal data,
sealed under the subscriber's own key (`PERSONAL`), so destroying that key
erases the person from every past event while the events stay in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from domain.actions import ListChange, ProfileAction
from domain.integration import FieldChange
from domain.model import PERSONAL, Actor, Aggregate, CreationEvent, DomainEvent

TRIGGER_WINDOW: Final = timedelta(hours=1)
UNSUBSCRIBED_AT: Final = "unsubscribedAt"
LIST_PREFIX: Final = "lists."


@dataclass(frozen=True)
class Provenance:
    """Where a change came from: the submission, its integration and the
    configuration version it was decided under."""

    integration_id: UUID
    submission_id: UUID
    configuration_version: int | None
    source: str | None


class Caused(DomainEvent):
    """An event caused by a submission to an integration."""

    integration_id: UUID
    submission_id: UUID
    configuration_version: int | None = None

    def data_subject(self) -> UUID | None:
        return self.originator_id


class SubscriberRegistered(CreationEvent, Caused):
    """A new profile; `source` is the import source that created it."""

    source: str | None = None

    @classmethod
    def aggregate_type(cls) -> type[Aggregate]:
        return Subscriber


class ProfileChanged(Caused):
    """Field values before and after, keyed by field name (`email`,
    `custom.colour`, `unsubscribedAt`, `lists.7`)."""

    changes: Annotated[dict[str, FieldChange], PERSONAL]
    source: str | None = None


class ConsentRecorded(Caused):
    text: Annotated[str | None, PERSONAL]
    given: bool
    client_ip: Annotated[str | None, PERSONAL] = None


class ReversalRefused(Caused):
    """A public submission tried to undo an unsubscribe; it was not applied."""

    scope: Literal["global", "list"]
    list_id: int | None = None


class MessageTriggered(Caused):
    """The integration's activity was triggered for this subscriber."""

    delivery_id: UUID
    activity_id: int
    request_content: Annotated[dict[str, Any] | None, PERSONAL] = None
    #: The identifiers as the submission left them: who the message goes to.
    recipient: Annotated[dict[str, str | None] | None, PERSONAL] = None


class MessageSuppressed(Caused):
    activity_id: int
    reason: Literal["unsubscribed", "trigger-limit"]


class SubscriberErased(DomainEvent):
    """The person's key was destroyed; holds no personal data."""

    actor: Actor
    reason: str


ProfileOutcome = Literal["created", "updated", "unchanged"]


class Subscriber(Aggregate):
    """One person's profile. Its id is random, never derived from an email or
    phone, so nothing links it to the person once their key is destroyed."""

    values: dict[str, Any]
    lists: dict[int, dict[str, Any]]
    source: str | None
    triggered_at: list[datetime]
    erased: bool

    @classmethod
    def register(cls, *, id: UUID, provenance: Provenance) -> Subscriber:
        return cls._start(
            SubscriberRegistered,
            id=id,
            source=provenance.source,
            **_caused(provenance),
        )

    def erase(self, *, actor: Actor, reason: str) -> None:
        """Record that the person was erased; the event holds no personal data."""
        if self.erased:
            return
        self._record(SubscriberErased, actor=actor, reason=reason)

    @property
    def unsubscribed_at(self) -> str | None:
        value = self.values.get(UNSUBSCRIBED_AT)
        return value if isinstance(value, str) else None

    @property
    def is_unsubscribed(self) -> bool:
        return self.unsubscribed_at is not None

    def apply_profile(
        self, action: ProfileAction, *, provenance: Provenance, client_ip: str | None
    ) -> ProfileOutcome:
        """Apply a public profile action; unsubscribes are never reversed."""
        changes: dict[str, FieldChange] = {}
        for name, value in action.values.items():
            self._change(changes, name, value)

        if action.unsubscribe_at is not None and not self.is_unsubscribed:
            self._change(changes, UNSUBSCRIBED_AT, _stamp(action.unsubscribe_at))
        if action.clears_unsubscribe and self.is_unsubscribed:
            self._record(ReversalRefused, scope="global", **_caused(provenance))

        for change in action.lists:
            self._change_list(changes, change, provenance)

        if changes:
            self._record(
                ProfileChanged,
                changes=changes,
                source=provenance.source,
                **_caused(provenance),
            )
        if action.consent is not None:
            self._record(
                ConsentRecorded,
                text=action.consent.text,
                given=action.consent.given,
                client_ip=client_ip,
                **_caused(provenance),
            )
        return "updated" if changes else "unchanged"

    def _change(self, changes: dict[str, FieldChange], name: str, value: Any) -> None:
        current = self.values.get(name)
        if current != value:
            changes[name] = FieldChange(before=current, after=value)

    def _change_list(
        self,
        changes: dict[str, FieldChange],
        change: ListChange,
        provenance: Provenance,
    ) -> None:
        current = self.lists.get(change.list_id, {})
        updated = dict(current)
        unsubscribed = current.get("unsubscribedAt") is not None
        if change.subscribe_at is not None:
            if unsubscribed:
                self._record(
                    ReversalRefused,
                    scope="list",
                    list_id=change.list_id,
                    **_caused(provenance),
                )
            elif current.get("subscribedAt") is None:
                updated["subscribedAt"] = _stamp(change.subscribe_at)
        if change.clears_unsubscribe and unsubscribed:
            self._record(
                ReversalRefused,
                scope="list",
                list_id=change.list_id,
                **_caused(provenance),
            )
        if change.unsubscribe_at is not None and not unsubscribed:
            updated["unsubscribedAt"] = _stamp(change.unsubscribe_at)
        if change.option is not None:
            updated["subscriptionOption"] = change.option
        if updated != current:
            changes[f"{LIST_PREFIX}{change.list_id}"] = FieldChange(
                before=current or None, after=updated
            )

    def trigger(
        self,
        *,
        activity_id: int,
        delivery_id: UUID,
        request_content: dict[str, Any] | None,
        allow_unsubscribed: bool,
        limit: int,
        now: datetime,
        provenance: Provenance,
    ) -> Literal["triggered", "suppressed"]:
        """Trigger the activity, or record why it was suppressed."""
        if self.is_unsubscribed and not allow_unsubscribed:
            self._record(
                MessageSuppressed,
                activity_id=activity_id,
                reason="unsubscribed",
                **_caused(provenance),
            )
            return "suppressed"
        recent = [t for t in self.triggered_at if now - t < TRIGGER_WINDOW]
        if len(recent) >= limit:
            self._record(
                MessageSuppressed,
                activity_id=activity_id,
                reason="trigger-limit",
                **_caused(provenance),
            )
            return "suppressed"
        self._record(
            MessageTriggered,
            delivery_id=delivery_id,
            activity_id=activity_id,
            request_content=request_content,
            recipient={
                name: self.values.get(name) for name in ("ref", "email", "phone")
            },
            **_caused(provenance),
        )
        return "triggered"

    def _copy_containers(self, twin: Subscriber) -> None:
        twin.values = dict(self.values)
        twin.lists = {list_id: dict(item) for list_id, item in self.lists.items()}
        twin.triggered_at = list(self.triggered_at)

    def when(self, event: DomainEvent) -> None:
        match event:
            case SubscriberRegistered():
                self.values = {}
                self.lists = {}
                self.source = event.source
                self.triggered_at = []
                self.erased = False
            case ProfileChanged():
                for name, change in event.changes.items():
                    self._apply_change(name, change.after)
            case MessageTriggered():
                cutoff = event.timestamp - TRIGGER_WINDOW
                self.triggered_at = [t for t in self.triggered_at if t > cutoff] + [
                    event.timestamp
                ]
            case ConsentRecorded() | ReversalRefused() | MessageSuppressed():
                pass
            case SubscriberErased():
                self.values = {}
                self.lists = {}
                self.erased = True
            case _:
                raise self._unexpected(event)

    def _apply_change(self, name: str, value: Any) -> None:
        if name.startswith(LIST_PREFIX):
            list_id = int(name.removeprefix(LIST_PREFIX))
            if value:
                self.lists[list_id] = dict(value)
            else:
                self.lists.pop(list_id, None)
        elif value is None:
            self.values.pop(name, None)
        else:
            self.values[name] = value


def _stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _caused(provenance: Provenance) -> dict[str, Any]:
    return {
        "integration_id": provenance.integration_id,
        "submission_id": provenance.submission_id,
        "configuration_version": provenance.configuration_version,
    }
