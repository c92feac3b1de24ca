"""Delivering triggered messages: the worker, and the deliveries use cases.

The worker leases due deliveries from the outbox, checks that no receipt
exists yet, opens the sealed body, sends it, and records the outcome as an
event: a `DeliveryReceipt` on success (a second one cannot exist), a failed
attempt with the time of the next one, or a dead letter. Retries back off
exponentially with jitter, starting within seconds; `Retry-After` is
honoured. A worker killed mid-delivery leaves its lease to expire, and the
delivery is made again with the same `deliveryId`: at least once.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol
from uuid import UUID

import orjson

from application.errors import ConcurrencyConflict, NotFound
from application.ports import Clock, EventStore
from application.reading import Page, decode_cursor, encode_cursor
from domain.delivery import Delivery, DeliveryReceipt
from domain.errors import StateConflict
from domain.model import Actor

logger = logging.getLogger(__name__)

FIRST_RETRY_SECONDS: Final = 2.0
LONGEST_RETRY_SECONDS: Final = 600.0
LONGEST_RETRY_AFTER_SECONDS: Final = 3600.0
#: How long a sent delivery stays out of reach while its outcome is projected.
SETTLE_SECONDS: Final = 60.0
POLL_SECONDS: Final = 1.0
SENDERS: Final = 4


class Leased(Protocol):
    @property
    def delivery_id(self) -> str: ...
    @property
    def subscriber_id(self) -> str: ...
    @property
    def activity_id(self) -> int: ...
    @property
    def integration_id(self) -> str: ...
    @property
    def submission_id(self) -> str: ...
    @property
    def body(self) -> dict[str, Any] | None: ...


class Outbox(Protocol):
    """Why: deliveries wait in a durable outbox that several workers share;
    a lease keeps two of them from sending one delivery at once."""

    def lease(self, *, now: str, until: str, limit: int) -> list[Any]: ...

    def hold(self, delivery_id: str, *, until: str) -> None: ...

    def counts(self) -> dict[str, int]: ...

    def status_of(self, delivery_id: str) -> str | None: ...

    def of_subscriber(self, subscriber_id: str) -> list[dict[str, Any]]: ...

    def list(
        self,
        *,
        status: str | None,
        activity_id: int | None,
        subscriber_id: str | None,
        after: tuple[str, str] | None,
        limit: int,
    ) -> tuple[list[dict[str, Any]], int]: ...


class Outcome(Protocol):
    @property
    def succeeded(self) -> bool: ...
    @property
    def permanent(self) -> bool: ...
    @property
    def status_code(self) -> int | None: ...
    @property
    def retry_after(self) -> float | None: ...
    def describe(self) -> str: ...


class Channel(Protocol):
    """Why: the platform that sends the email or SMS is outside; it can be
    slow, refuse, or be down."""

    def send(self, body: bytes, *, delivery_id: str) -> Outcome: ...


class Opener(Protocol):
    """Opens sealed documents; a value whose key is gone reads as erased."""

    def open_documents(self, documents: list[Any]) -> list[tuple[Any, bool]]: ...


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def backoff(tries: int, retry_after: float | None) -> timedelta:
    """When to try again after `tries` failures: exponential with jitter,
    or what the receiver asked for with Retry-After."""
    if retry_after is not None:
        return timedelta(seconds=min(retry_after, LONGEST_RETRY_AFTER_SECONDS))
    ceiling = min(LONGEST_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2 ** (tries - 1))
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))  # noqa: S311


@dataclass
class DeliveryWorker:
    """Sends due deliveries until stopped."""

    store: EventStore
    outbox: Outbox
    channel: Channel
    opener: Opener
    clock: Clock
    max_attempts: int
    lease_seconds: float
    wake: threading.Event

    def run(self, stop: threading.Event) -> None:
        sending: dict[str, Future[None]] = {}
        with ThreadPoolExecutor(SENDERS, thread_name_prefix="delivery") as senders:
            while not stop.is_set():
                for delivery_id, sent in list(sending.items()):
                    if sent.done():
                        del sending[delivery_id]
                        sent.result()  # a failed send restarts the worker
                now = self.clock.now()
                until = stamp(now + timedelta(seconds=self.lease_seconds))
                # Hold on to what is still being sent: a live worker keeps its
                # lease, only a dead one lets it expire.
                for delivery_id, sent in sending.items():
                    if not sent.done():
                        self.outbox.hold(delivery_id, until=until)
                free = SENDERS - len(sending)
                due = (
                    self.outbox.lease(now=stamp(now), until=until, limit=free)
                    if free
                    else []
                )
                # A slow or failing receiver holds up only the sends it is
                # answering: the next due deliveries go to the free senders
                # without waiting for it, and each failure is rescheduled on
                # its own.
                for leased in due:
                    if leased.delivery_id in sending:
                        continue
                    sent = senders.submit(self.deliver, leased)
                    sent.add_done_callback(lambda _: self.wake.set())
                    sending[leased.delivery_id] = sent
                if due and len(due) == free:
                    continue
                self.wake.wait(POLL_SECONDS)
                self.wake.clear()

    def close(self) -> None:
        return None

    def deliver(self, leased: Leased) -> None:
        delivery_id = UUID(leased.delivery_id)
        if (
            self.store.find(DeliveryReceipt.id_for(delivery_id), DeliveryReceipt)
            is not None
        ):
            self._settle(leased)
            return
        ((personal, erased),) = self.opener.open_documents([leased.body])
        if leased.body is None or erased:
            self._cancel(leased, "the subscriber was erased")
            return
        body = webhook_body(leased, personal)
        outcome = self.channel.send(body, delivery_id=leased.delivery_id)
        if outcome.succeeded:
            self._succeeded(leased, outcome)
        else:
            self._failed(leased, outcome)

    def _succeeded(self, leased: Leased, outcome: Outcome) -> None:
        delivery = self.store.find(UUID(leased.delivery_id), Delivery)
        attempt = (delivery.attempts if delivery else 0) + 1
        receipt = DeliveryReceipt.record(
            delivery_id=UUID(leased.delivery_id),
            attempt=attempt,
            status_code=outcome.status_code or 200,
        )
        try:
            self.store.save(receipt)
        except ConcurrencyConflict:
            logger.info("delivery %s already had a receipt", leased.delivery_id)
        self._settle(leased)

    def _failed(self, leased: Leased, outcome: Outcome) -> None:
        for _ in range(3):
            delivery = self._delivery(leased)
            tries = delivery.tries + 1
            last = outcome.permanent or tries >= self.max_attempts
            retry_in = None if last else backoff(tries, outcome.retry_after)
            delivery.failed(
                attempt=delivery.attempts + 1,
                reason=outcome.describe(),
                status_code=outcome.status_code,
                retry_in=retry_in,
                now=self.clock.now(),
            )
            try:
                self.store.save(delivery)
            except ConcurrencyConflict:
                continue
            logger.info(
                "delivery %s failed (%s); %s",
                leased.delivery_id,
                outcome.describe(),
                "dead-lettered" if retry_in is None else f"retry in {retry_in}",
            )
            if retry_in is None:
                self._settle(leased)
            else:
                self.outbox.hold(
                    leased.delivery_id, until=stamp(self.clock.now() + retry_in)
                )
            return

    def _cancel(self, leased: Leased, reason: str) -> None:
        delivery = self._delivery(leased)
        delivery.cancel(reason=reason, actor=Actor.system())
        try:
            self.store.save(delivery)
        except ConcurrencyConflict:
            logger.info("delivery %s changed while cancelling", leased.delivery_id)
        self._settle(leased)

    def _delivery(self, leased: Leased) -> Delivery:
        delivery = self.store.find(UUID(leased.delivery_id), Delivery)
        if delivery is None:
            delivery = Delivery.open(
                delivery_id=UUID(leased.delivery_id),
                subscriber_id=UUID(leased.subscriber_id),
                activity_id=leased.activity_id,
                integration_id=UUID(leased.integration_id),
            )
        return delivery

    def _settle(self, leased: Leased) -> None:
        """Keep the delivery unleased while its final state is projected."""
        until = self.clock.now() + timedelta(seconds=SETTLE_SECONDS)
        self.outbox.hold(leased.delivery_id, until=stamp(until))


def webhook_body(leased: Leased, personal: dict[str, Any]) -> bytes:
    """The body of CONTRACT 3.2, the same bytes on every attempt."""
    return orjson.dumps(
        {
            "deliveryId": leased.delivery_id,
            "activityId": leased.activity_id,
            "subscriberId": leased.subscriber_id,
            "ref": personal.get("ref"),
            "email": personal.get("email"),
            "phone": personal.get("phone"),
            "requestContent": personal.get("requestContent"),
            "submissionId": leased.submission_id,
            "integrationId": leased.integration_id,
            "isTest": False,
        }
    )


class Deliveries:
    """Listing deliveries, retrying dead letters, cancelling for erasure."""

    def __init__(self, store: EventStore, outbox: Outbox) -> None:
        self._store = store
        self._outbox = outbox

    def list(
        self,
        *,
        status: str | None,
        activity_id: int | None,
        subscriber_id: str | None,
        cursor: str | None,
        limit: int,
    ) -> Page:
        after = tuple(decode_cursor(cursor)) if cursor else None
        rows, position = self._outbox.list(
            status=status,
            activity_id=activity_id,
            subscriber_id=subscriber_id,
            after=after,
            limit=limit,
        )
        next_cursor = (
            encode_cursor([rows[-1]["created_at"], rows[-1]["delivery_id"]])
            if len(rows) == limit
            else None
        )
        return Page(rows, next_cursor, position)

    def counts(self) -> Mapping[str, int]:
        return self._outbox.counts()

    def retry(self, delivery_id: UUID, *, actor: Actor) -> int | None:
        """Send a dead letter again; answers the position of the request."""
        # A delivery made at the first attempt has a receipt but no `Delivery`
        # (that records only failures), and one never attempted has neither:
        # both exist, and neither is a dead letter.
        receipt_id = DeliveryReceipt.id_for(delivery_id)
        if self._store.find(receipt_id, DeliveryReceipt) is not None:
            msg = f"delivery {delivery_id} was delivered; only dead letters are retried"
            raise StateConflict(msg)
        delivery = self._store.find(delivery_id, Delivery)
        if delivery is None:
            status = self._outbox.status_of(str(delivery_id))
            if status is None:
                raise NotFound(f"no delivery {delivery_id}")
            msg = f"delivery {delivery_id} is {status}; only dead letters are retried"
            raise StateConflict(msg)
        delivery.retry(actor=actor)
        return self._store.save(delivery)

    def cancel_for(
        self, subscriber_id: UUID, *, reason: str, actor: Actor
    ) -> int | None:
        """Cancel every pending and dead delivery of a subscriber."""
        position = None
        for row in self._outbox.of_subscriber(str(subscriber_id)):
            delivery_id = UUID(row["delivery_id"])
            delivery = self._store.find(delivery_id, Delivery) or Delivery.open(
                delivery_id=delivery_id,
                subscriber_id=subscriber_id,
                activity_id=row["activity_id"],
                integration_id=UUID(row["integration_id"]),
            )
            delivery.cancel(reason=reason, actor=actor)
            if delivery.has_pending_events:
                position = self._store.save(delivery) or position
        return position
