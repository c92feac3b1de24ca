"""Handing triggered messages to the mail platform: attempts, retries, dead
letters, and the receipt that makes a second success impossible.

A `Delivery` records what happened to one triggered message (its id is the
message's `deliveryId`). Its success is a separate `DeliveryReceipt` whose id
derives from the delivery id: a second success for the same delivery would
create the same aggregate twice, which the store refuses.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final, Literal
from uuid import UUID, uuid5

from domain.errors import StateConflict
from domain.model import Actor, Aggregate, CreationEvent, DomainEvent

RECEIPT_NAMESPACE: Final = UUID("d3c9e1f0-5a4b-4c2d-9e8f-7a6b5c4d3e2f")

Status = Literal["pending", "dead", "cancelled"]


class DeliveryOpened(CreationEvent):
    """The first attempt (or cancellation) of a triggered message."""

    subscriber_id: UUID
    activity_id: int
    integration_id: UUID

    @classmethod
    def aggregate_type(cls) -> type[Aggregate]:
        return Delivery


class DeliveryAttemptFailed(DomainEvent):
    attempt: int
    reason: str
    status_code: int | None = None
    #: When the next attempt is due; None when this was the last one.
    retry_at: datetime | None = None


class DeliveryDeadLettered(DomainEvent):
    """No more attempts: the limit was reached, or the receiver refused it."""

    attempts: int
    reason: str


class DeliveryRetryRequested(DomainEvent):
    """Someone asked for a dead letter to be tried again."""

    actor: Actor


class DeliveryCancelled(DomainEvent):
    reason: str
    actor: Actor


class Delivery(Aggregate):
    """The attempts at one triggered message."""

    subscriber_id: UUID
    status: Status
    attempts: int
    #: Attempts since it was opened or last retried by hand.
    tries: int

    @classmethod
    def open(
        cls,
        *,
        delivery_id: UUID,
        subscriber_id: UUID,
        activity_id: int,
        integration_id: UUID,
    ) -> Delivery:
        return cls._start(
            DeliveryOpened,
            id=delivery_id,
            subscriber_id=subscriber_id,
            activity_id=activity_id,
            integration_id=integration_id,
        )

    def failed(
        self,
        *,
        attempt: int,
        reason: str,
        status_code: int | None,
        retry_in: timedelta | None,
        now: datetime,
    ) -> None:
        """Record a failed attempt; without `retry_in` it is dead-lettered."""
        self._record(
            DeliveryAttemptFailed,
            attempt=attempt,
            reason=reason,
            status_code=status_code,
            retry_at=None if retry_in is None else now + retry_in,
        )
        if retry_in is None:
            self._record(DeliveryDeadLettered, attempts=attempt, reason=reason)

    def retry(self, *, actor: Actor) -> None:
        if self.status != "dead":
            msg = f"delivery {self.id} is {self.status}; only dead letters are retried"
            raise StateConflict(msg)
        self._record(DeliveryRetryRequested, actor=actor)

    def cancel(self, *, reason: str, actor: Actor) -> None:
        if self.status == "cancelled":
            return
        self._record(DeliveryCancelled, reason=reason, actor=actor)

    def when(self, event: DomainEvent) -> None:
        match event:
            case DeliveryOpened():
                self.subscriber_id = event.subscriber_id
                self.status = "pending"
                self.attempts = 0
                self.tries = 0
            case DeliveryAttemptFailed():
                self.attempts = event.attempt
                self.tries += 1
            case DeliveryDeadLettered():
                self.status = "dead"
            case DeliveryRetryRequested():
                self.status = "pending"
                self.tries = 0
            case DeliveryCancelled():
                self.status = "cancelled"
            case _:
                raise self._unexpected(event)


class DeliverySucceeded(CreationEvent):
    """The receiver accepted the message."""

    delivery_id: UUID
    attempt: int
    status_code: int

    @classmethod
    def aggregate_type(cls) -> type[Aggregate]:
        return DeliveryReceipt


class DeliveryReceipt(Aggregate):
    """Proof that a delivery succeeded; there can be only one per delivery."""

    delivery_id: UUID

    @staticmethod
    def id_for(delivery_id: UUID) -> UUID:
        return uuid5(RECEIPT_NAMESPACE, str(delivery_id))

    @classmethod
    def record(
        cls, *, delivery_id: UUID, attempt: int, status_code: int
    ) -> DeliveryReceipt:
        return cls._start(
            DeliverySucceeded,
            id=cls.id_for(delivery_id),
            delivery_id=delivery_id,
            attempt=attempt,
            status_code=status_code,
        )

    def when(self, event: DomainEvent) -> None:
        match event:
            case DeliverySucceeded():
                self.delivery_id = event.delivery_id
            case _:
                raise self._unexpected(event)
