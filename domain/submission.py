"""A submission to a public endpoint, and the dedupe window it may open.

Every submission that reaches an integration is one `Submission` aggregate:
accepted, tested, refused or deduplicated, and then the events it logged.
Its request metadata (client IP, user agent) is sealed under the key of the
day, so it can be forgotten after the retention period on its own.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Final, Literal
from uuid import UUID, uuid5

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from domain.model import (
    PERSONAL,
    REQUEST_METADATA,
    Aggregate,
    CreationEvent,
    DomainEvent,
)

Mode = Literal["production", "test"]
Outcome = Literal[
    "created", "updated", "unchanged", "logged", "triggered", "suppressed", "refused"
]
RefusalReason = Literal[
    "captcha-failed",
    "origin-not-allowed",
    "validation-failed",
    "action-not-permitted",
    "honeypot",
    "idempotency-key-reused",
]
WINDOW_NAMESPACE: Final = UUID("b1f5a3e2-4c6d-4f0e-8a9b-0c1d2e3f4a5b")


class _Value(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )


class RequestMetadata(_Value):
    """Where a request came from; sealed under the day's key."""

    client_ip: str | None = None
    user_agent: str | None = None


class ActionResult(_Value):
    """What happened to one action. `refused` says why an action was not
    applied when the public answer must not reveal it."""

    action: int
    kind: Literal["profile", "event", "message"]
    outcome: Outcome
    subscriber_id: UUID | None = None
    refused: str | None = None


class Violation(_Value):
    """A broken rule, recorded without the submitted value."""

    action: int | None = None
    field: str
    rule: str


class SubmissionRecorded(CreationEvent):
    """What every first event of a submission holds."""

    integration_id: UUID
    endpoint_id: str
    mode: Mode
    configuration_version: int | None = None
    request: Annotated[RequestMetadata | None, REQUEST_METADATA] = None
    idempotency_key_digest: str | None = None
    #: Keyed hash of the canonical body; the body itself is never stored.
    body_digest: str

    @classmethod
    def aggregate_type(cls) -> type[Aggregate]:
        return Submission


class SubmissionAccepted(SubmissionRecorded):
    results: list[ActionResult]
    dedupe_window_id: UUID | None = None


class SubmissionTested(SubmissionRecorded):
    """A test-mode submission: what production would have done; nothing applied."""

    results: list[ActionResult]
    dedupe_window_id: UUID | None = None


class SubmissionRefused(SubmissionRecorded):
    reason: RefusalReason
    violations: list[Violation] = []


class SubmissionDeduplicated(SubmissionRecorded):
    """A repeat inside the dedupe window; nothing was applied."""

    original_submission_id: UUID
    dedupe_window_id: UUID


class EventLogged(DomainEvent):
    """An event a submission logged for a subscriber."""

    subscriber_id: UUID
    integration_id: UUID
    event_type: str
    data: Annotated[dict[str, Any] | None, PERSONAL] = None
    activity_id: int | None = None
    parent_id: str | None = None

    def data_subject(self) -> UUID | None:
        return self.subscriber_id


class Submission(Aggregate):
    integration_id: UUID
    mode: Mode
    outcome: str

    @classmethod
    def record(
        cls,
        event_type: type[SubmissionRecorded],
        *,
        id: UUID,
        **fields: Any,
    ) -> Submission:
        return cls._start(event_type, id=id, **fields)

    def log_event(
        self,
        *,
        subscriber_id: UUID,
        event_type: str,
        data: dict[str, Any] | None,
        activity_id: int | None,
        parent_id: str | None,
    ) -> None:
        self._record(
            EventLogged,
            subscriber_id=subscriber_id,
            integration_id=self.integration_id,
            event_type=event_type,
            data=data,
            activity_id=activity_id,
            parent_id=parent_id,
        )

    def when(self, event: DomainEvent) -> None:
        match event:
            case SubmissionRecorded():
                self.integration_id = event.integration_id
                self.mode = event.mode
                self.outcome = type(event).__name__
            case EventLogged():
                pass
            case _:
                raise self._unexpected(event)


class DedupeWindowOpened(CreationEvent):
    """An accepted submission opened a dedupe window for its key."""

    integration_id: UUID
    mode: Mode
    key_digest: str
    submission_id: UUID
    body_digest: str
    period_seconds: int
    results: list[ActionResult]

    @classmethod
    def aggregate_type(cls) -> type[Aggregate]:
        return DedupeWindow


class DedupeWindowReopened(DomainEvent):
    """A later accepted submission opened the window again after it closed."""

    integration_id: UUID
    submission_id: UUID
    body_digest: str
    period_seconds: int
    results: list[ActionResult]


class DedupeWindow(Aggregate):
    """The last accepted submission for one dedupe key, and until when
    repeats of it are answered from it instead of applied."""

    integration_id: UUID
    mode: Mode
    key_digest: str
    submission_id: UUID
    body_digest: str
    opened_at: datetime
    period: timedelta
    results: list[ActionResult]

    @staticmethod
    def id_for(*, integration_id: UUID, mode: Mode, key_digest: str) -> UUID:
        return uuid5(WINDOW_NAMESPACE, f"{integration_id}:{mode}:{key_digest}")

    @classmethod
    def open(
        cls,
        *,
        integration_id: UUID,
        mode: Mode,
        key_digest: str,
        submission_id: UUID,
        body_digest: str,
        period_seconds: int,
        results: list[ActionResult],
    ) -> DedupeWindow:
        return cls._start(
            DedupeWindowOpened,
            id=cls.id_for(
                integration_id=integration_id, mode=mode, key_digest=key_digest
            ),
            integration_id=integration_id,
            mode=mode,
            key_digest=key_digest,
            submission_id=submission_id,
            body_digest=body_digest,
            period_seconds=period_seconds,
            results=results,
        )

    def is_open(self, now: datetime) -> bool:
        """Repeats count from the last accepted request; they do not extend it."""
        return now < self.opened_at + self.period

    def reopen(
        self,
        *,
        submission_id: UUID,
        body_digest: str,
        period_seconds: int,
        results: list[ActionResult],
    ) -> None:
        self._record(
            DedupeWindowReopened,
            integration_id=self.integration_id,
            submission_id=submission_id,
            body_digest=body_digest,
            period_seconds=period_seconds,
            results=results,
        )

    def _copy_containers(self, twin: DedupeWindow) -> None:
        twin.results = list(self.results)

    def when(self, event: DomainEvent) -> None:
        match event:
            case DedupeWindowOpened():
                self.integration_id = event.integration_id
                self.mode = event.mode
                self.key_digest = event.key_digest
                self._opened(event.submission_id, event.body_digest, event)
                self.period = timedelta(seconds=event.period_seconds)
                self.results = event.results
            case DedupeWindowReopened():
                self._opened(event.submission_id, event.body_digest, event)
                self.period = timedelta(seconds=event.period_seconds)
                self.results = event.results
            case _:
                raise self._unexpected(event)

    def _opened(
        self, submission_id: UUID, body_digest: str, event: DomainEvent
    ) -> None:
        self.submission_id = submission_id
        self.body_digest = body_digest
        self.opened_at = event.timestamp
