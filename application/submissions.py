"""Public submissions: from a checked request to one atomic write.

`Intake` runs the checks that need no lock (validation with the integration's
compiled rules, the permission flags that do not depend on who is
subscribed) and turns a request into a command. `SubmissionWriter` is the one
writer of its process: a thread that takes commands in batches, decides each
one against the store (dedupe window, who holds an identifying value, the
flags that depend on whether a profile exists, triggers), and records the
whole batch in one transaction. If another process changed the same
aggregates first, the batch is split and each command is decided again on
fresh state, alone; a submission is therefore always all or nothing.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal, Protocol, TypeVar
from uuid import UUID

from application.errors import ConcurrencyConflict, StoreUnavailable
from application.integrations import Integrations
from application.ports import Clock, EventStore, Fingerprints, SubjectKeys
from domain.actions import (
    Action,
    ActionViolation,
    EventAction,
    MessageAction,
    ProfileAction,
    read_actions,
)
from domain.identity import IdentityClaim
from domain.integration import Integration
from domain.model import Aggregate
from domain.profile import IDENTIFIERS
from domain.rules import CompiledRules
from domain.submission import (
    ActionResult,
    DedupeWindow,
    Mode,
    RefusalReason,
    RequestMetadata,
    Submission,
    SubmissionAccepted,
    SubmissionDeduplicated,
    SubmissionRecorded,
    SubmissionRefused,
    SubmissionTested,
    Violation,
)
from domain.subscriber import Provenance, Subscriber

logger = logging.getLogger(__name__)

A = TypeVar("A", bound=Aggregate)

MAX_BATCH: Final = 64
#: Attempts at one command alone after its batch lost a race, with a
#: jittered backoff growing by this step each time (about 2 s in all).
ATTEMPTS: Final = 12
RETRY_STEP_SECONDS: Final = 0.03
RULES_CACHE_SIZE: Final = 256
ENDPOINT_CACHE_SIZE: Final = 10_000
CLAIM_ID_CACHE_SIZE: Final = 10_000


@dataclass(frozen=True)
class RequestFacts:
    """What the API learned about a request before the actions were read."""

    endpoint_id: str
    mode: Mode
    received_at: datetime
    client_ip: str | None
    user_agent: str | None
    idempotency_key: str | None
    #: Keyed hash of the canonical body, without CAPTCHA and honeypot fields.
    body_digest: str
    #: The answer may say exactly what happened (detailedResponses, or a
    #: token that may read subscribers).
    detailed: bool


@dataclass(frozen=True)
class Answer:
    """What happened to a submission, for the API to put into words."""

    submission_id: UUID
    position: int
    mode: Mode
    results: list[ActionResult] = field(default_factory=list)
    duplicate: bool = False
    refusal: RefusalReason | None = None
    violations: list[ActionViolation] = field(default_factory=list)


@dataclass(frozen=True)
class Refuse:
    """Record a refused submission: its reason and broken rules, no body."""

    integration: Integration
    facts: RequestFacts
    reason: RefusalReason
    violations: list[ActionViolation] = field(default_factory=list)
    submission_id: UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True)
class Decide:
    """Decide and record a submission whose actions passed every static check."""

    integration: Integration
    facts: RequestFacts
    actions: list[Action]
    submission_id: UUID = field(default_factory=uuid.uuid4)


Command = Refuse | Decide


class StaleIntegration(Exception):
    """The integration changed after the request was checked against it;
    the request must be checked again against the current one."""


class ExistenceRefusal(Exception):
    """A detailed answer must refuse an action the flags do not allow."""

    def __init__(self, violation: ActionViolation) -> None:
        super().__init__(violation.message)
        self.violation = violation


class Intake:
    """The checks a submission passes before it is decided, and its commands."""

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._rules: OrderedDict[tuple[UUID, int | None], CompiledRules] = OrderedDict()
        self._endpoints: OrderedDict[str, Integration] = OrderedDict()
        self._lock = threading.Lock()

    def remembered(self, endpoint_id: str, mode: Mode) -> Integration | None:
        """The remembered integration if it answers; no I/O (see `endpoint`)."""
        with self._lock:
            remembered = self._endpoints.get(endpoint_id)
        if remembered is not None and _answers(remembered, mode):
            return remembered
        return None

    def endpoint(
        self, endpoint_id: str, mode: Mode, *, fresh: bool = False
    ) -> Integration | None:
        """The integration answering at this endpoint, or None (HTTP 404).

        Production needs an active integration; test mode any saved one.
        A remembered integration is trusted only to say yes: the writer checks
        that it is still current before anything is decided (`StaleIntegration`
        otherwise), and a no is always checked against the store, so that
        activating an integration takes effect at once.
        """
        if not fresh:
            with self._lock:
                remembered = self._endpoints.get(endpoint_id)
            if remembered is not None and _answers(remembered, mode):
                return remembered
        integration = Integrations(self._store).find_by_endpoint(endpoint_id)
        with self._lock:
            if integration is None:
                self._endpoints.pop(endpoint_id, None)
            else:
                self._endpoints[endpoint_id] = integration
                self._endpoints.move_to_end(endpoint_id)
                while len(self._endpoints) > ENDPOINT_CACHE_SIZE:
                    self._endpoints.popitem(last=False)
        return (
            integration
            if integration is not None and _answers(integration, mode)
            else None
        )

    def rules_for(self, integration: Integration) -> CompiledRules:
        """The integration's rules, compiled once per configuration version."""
        key = (integration.id, integration.configuration_version)
        with self._lock:
            compiled = self._rules.get(key)
            if compiled is not None:
                self._rules.move_to_end(key)
                return compiled
        compiled = CompiledRules(integration.configuration.field_validation_rules)
        with self._lock:
            self._rules[key] = compiled
            while len(self._rules) > RULES_CACHE_SIZE:
                self._rules.popitem(last=False)
        return compiled

    def prepare(
        self,
        integration: Integration,
        facts: RequestFacts,
        body: Any,
        *,
        extra_profile_keys: frozenset[str] = frozenset(),
    ) -> Command:
        """Validate (422) and check the static permissions (403), in that order."""
        configuration = integration.configuration
        reading = read_actions(
            body,
            identify_by=configuration.identify_by,
            default_region=configuration.default_phone_region,
            rules=self.rules_for(integration),
            now=facts.received_at,
            extra_profile_keys=extra_profile_keys,
        )
        if reading.violations:
            return Refuse(integration, facts, "validation-failed", reading.violations)
        refused = [
            violation
            for action in reading.actions
            if (violation := _forbidden(action, integration)) is not None
        ]
        if refused:
            return Refuse(integration, facts, "action-not-permitted", refused)
        return Decide(integration, facts, reading.actions)


def _answers(integration: Integration, mode: Mode) -> bool:
    return integration.saved and (mode == "test" or integration.is_active)


def _forbidden(action: Action, integration: Integration) -> ActionViolation | None:
    """Why the configuration forbids `action` whoever is subscribed, if it does."""
    configuration = integration.configuration
    if isinstance(action, EventAction) and not configuration.allow_event_logging:
        return ActionViolation(
            action.index,
            "event",
            "allowEventLogging",
            "this endpoint does not log events",
        )
    if isinstance(action, MessageAction):
        if not configuration.allow_messages:
            return ActionViolation(
                action.index,
                "message",
                "allowMessages",
                "this endpoint sends no messages",
            )
        if action.activity_id != configuration.trigger_activity_id:
            return ActionViolation(
                action.index,
                "activityId",
                "triggerActivityId",
                "this endpoint can trigger only its configured activity",
            )
    return None


class Finder(Protocol):
    """Where a unit of work reads the aggregates it has not seen yet."""

    def find(self, aggregate_id: UUID, kind: type[A]) -> A | None: ...


class Loader(Protocol):
    def find_many(self, aggregate_ids: Sequence[UUID]) -> dict[UUID, Aggregate]: ...


class UnitOfWork:
    """The aggregates one batch (or one command) reads and changes.

    A command works in a child unit (`child()`): it sees the batch's changes
    so far, on copies, and its own changes reach the batch only when it
    merges them, which it does only if the whole command succeeded.
    """

    def __init__(self, store: Finder, *, parent: UnitOfWork | None = None) -> None:
        self._store = store
        self._parent = parent
        self._seen: dict[UUID, Aggregate | None] = {}
        #: Changed aggregates in the order of their last change (a dict keeps
        #: insertion order and finds ids in constant time).
        self._order: dict[UUID, None] = {}

    def child(self) -> UnitOfWork:
        return UnitOfWork(self._store, parent=self)

    def get(self, aggregate_id: UUID, kind: type[A]) -> A | None:
        if aggregate_id not in self._seen:
            if self._parent is not None:
                found = self._parent.get(aggregate_id, kind)
                self._seen[aggregate_id] = None if found is None else found.clone()
            else:
                self._seen[aggregate_id] = self._store.find(aggregate_id, kind)
        aggregate = self._seen[aggregate_id]
        return aggregate if isinstance(aggregate, kind) else None

    def add(self, aggregate: Aggregate) -> None:
        self._seen[aggregate.id] = aggregate

    def load(self, aggregate_ids: Iterable[UUID], store: Loader) -> list[Aggregate]:
        """Load the aggregates not seen yet in one round trip; absent ones are
        remembered as absent. Answers those found."""
        wanted = [i for i in dict.fromkeys(aggregate_ids) if i not in self._seen]
        found = store.find_many(wanted) if wanted else {}
        for aggregate_id in wanted:
            self._seen[aggregate_id] = found.get(aggregate_id)
        return list(found.values())

    def touch(self, aggregate: Aggregate) -> None:
        """Note that `aggregate` changed; the last touched is recorded last."""
        self._order.pop(aggregate.id, None)
        self._order[aggregate.id] = None

    def merge_into_parent(self) -> None:
        parent = self._parent
        assert parent is not None
        parent._seen.update(self._seen)
        for aggregate_id in self._order:
            parent._order.setdefault(aggregate_id, None)

    def changed(self) -> list[Aggregate]:
        """Aggregates with events to record, in the order they were changed."""
        changed = []
        for aggregate_id in self._order:
            aggregate = self._seen.get(aggregate_id)
            if aggregate is not None and aggregate.has_pending_events:
                changed.append(aggregate)
        return changed


class Decider:
    """Decides one command inside a unit of work: the rules that depend on
    the store's current state."""

    def __init__(
        self,
        fingerprints: Fingerprints,
        clock: Clock,
        *,
        trigger_limit: int,
    ) -> None:
        self._fingerprints = fingerprints
        self._clock = clock
        self._trigger_limit = trigger_limit
        self._claim_ids: dict[tuple[str, str], UUID] = {}

    def decide(self, command: Command, work: UnitOfWork) -> Answer:
        """Change aggregates in `work`; the answer's position is filled in later."""
        if isinstance(command, Refuse):
            return self._refuse(command, work, command.reason, command.violations)
        return self._decide(command, work)

    def _refuse(
        self,
        command: Command,
        work: UnitOfWork,
        reason: RefusalReason,
        violations: Sequence[ActionViolation],
    ) -> Answer:
        submission = Submission.record(
            SubmissionRefused,
            id=command.submission_id,
            reason=reason,
            violations=[
                Violation(action=v.action, field=v.field, rule=v.rule)
                for v in violations
            ],
            **self._recorded(command),
        )
        work.add(submission)
        work.touch(submission)
        return Answer(
            submission_id=submission.id,
            position=0,
            mode=command.facts.mode,
            refusal=reason,
            violations=list(violations),
        )

    def _decide(self, command: Decide, work: UnitOfWork) -> Answer:
        integration, facts = command.integration, command.facts
        configuration = integration.configuration
        window = None
        key_digest = None
        if configuration.dedupe_period_seconds > 0:
            key_digest = self._key_digest(facts)
            window = work.get(
                DedupeWindow.id_for(
                    integration_id=integration.id,
                    mode=facts.mode,
                    key_digest=key_digest,
                ),
                DedupeWindow,
            )
            if window is not None and window.is_open(self._clock.now()):
                return self._repeat(command, work, window)

        # The actions change a unit of their own: it reaches `work` only if
        # every action may be applied, and never in test mode.
        attempt = work.child()
        applied = _Submission(self, command, attempt)
        try:
            results = applied.apply()
        except ExistenceRefusal as refusal:
            return self._refuse(
                command, work, "action-not-permitted", [refusal.violation]
            )
        if facts.mode == "production":
            attempt.merge_into_parent()

        window_id = None
        if key_digest is not None:
            window_id = self._open_window(command, work, window, key_digest, results).id
        submission = Submission.record(
            SubmissionTested if facts.mode == "test" else SubmissionAccepted,
            id=command.submission_id,
            results=results,
            dedupe_window_id=window_id,
            **self._recorded(command),
        )
        if facts.mode == "production":
            for logged in applied.logged:
                submission.log_event(**logged)
        work.add(submission)
        work.touch(submission)
        return Answer(
            submission_id=submission.id, position=0, mode=facts.mode, results=results
        )

    def _repeat(
        self, command: Decide, work: UnitOfWork, window: DedupeWindow
    ) -> Answer:
        facts = command.facts
        if window.body_digest != facts.body_digest:
            violation = ActionViolation(
                0,
                "Idempotency-Key",
                "idempotency-key-reused",
                "this Idempotency-Key was used with another body inside the "
                "dedupe window; use a new key for a new request",
            )
            return self._refuse(command, work, "idempotency-key-reused", [violation])
        submission = Submission.record(
            SubmissionDeduplicated,
            id=command.submission_id,
            original_submission_id=window.submission_id,
            dedupe_window_id=window.id,
            **self._recorded(command),
        )
        work.add(submission)
        work.touch(submission)
        return Answer(
            submission_id=window.submission_id,
            position=0,
            mode=facts.mode,
            results=list(window.results),
            duplicate=True,
        )

    def _open_window(
        self,
        command: Decide,
        work: UnitOfWork,
        window: DedupeWindow | None,
        key_digest: str,
        results: list[ActionResult],
    ) -> DedupeWindow:
        period = command.integration.configuration.dedupe_period_seconds
        if window is None:
            window = DedupeWindow.open(
                integration_id=command.integration.id,
                mode=command.facts.mode,
                key_digest=key_digest,
                submission_id=command.submission_id,
                body_digest=command.facts.body_digest,
                period_seconds=period,
                results=results,
            )
            work.add(window)
        else:
            window.reopen(
                submission_id=command.submission_id,
                body_digest=command.facts.body_digest,
                period_seconds=period,
                results=results,
            )
        work.touch(window)
        return window

    def _key_digest(self, facts: RequestFacts) -> str:
        if facts.idempotency_key is not None:
            return self._fingerprints.of("idempotency-key", facts.idempotency_key)
        return facts.body_digest

    def _recorded(self, command: Command) -> dict[str, Any]:
        """The fields every first event of a submission holds."""
        facts = command.facts
        key = facts.idempotency_key
        return {
            "integration_id": command.integration.id,
            "endpoint_id": facts.endpoint_id,
            "mode": facts.mode,
            "configuration_version": command.integration.configuration_version,
            "request": RequestMetadata(
                client_ip=facts.client_ip, user_agent=facts.user_agent
            ),
            "idempotency_key_digest": (
                None if key is None else self._fingerprints.of("idempotency-key", key)
            ),
            "body_digest": facts.body_digest,
        }

    def reads(self, command: Command) -> list[UUID]:
        """The claims and dedupe window deciding `command` will look up."""
        if not isinstance(command, Decide):
            return []
        ids = []
        configuration = command.integration.configuration
        if configuration.dedupe_period_seconds > 0:
            ids.append(
                DedupeWindow.id_for(
                    integration_id=command.integration.id,
                    mode=command.facts.mode,
                    key_digest=self._key_digest(command.facts),
                )
            )
        for action in command.actions:
            if isinstance(action, ProfileAction):
                for name in IDENTIFIERS:
                    value = action.identifier(name)
                    if value is not None:
                        ids.append(self.claim_id(name, value))
            elif action.target is not None:
                ids.append(self.claim_id(configuration.identify_by, action.target))
        return ids

    def claim_id(self, name: str, value: str) -> UUID:
        # Each batch asks twice for the same ids (to load, then to decide).
        key = (name, value)
        found = self._claim_ids.get(key)
        if found is None:
            if len(self._claim_ids) > CLAIM_ID_CACHE_SIZE:
                self._claim_ids.clear()
            found = self._claim_ids[key] = self._claim_id(name, value)
        return found

    def _claim_id(self, name: str, value: str) -> UUID:
        return IdentityClaim.id_for(
            self._fingerprints.of("identifier", f"{name}:{value}")
        )

    def now(self) -> datetime:
        return self._clock.now()

    @property
    def trigger_limit(self) -> int:
        return self._trigger_limit


class _Submission:
    """The actions of one accepted submission, applied in a unit of work."""

    def __init__(self, decider: Decider, command: Decide, work: UnitOfWork) -> None:
        self.decider = decider
        self.command = command
        self.work = work
        self.configuration = command.integration.configuration
        self.test = command.facts.mode == "test"
        self.provenance = Provenance(
            integration_id=command.integration.id,
            submission_id=command.submission_id,
            configuration_version=command.integration.configuration_version,
            source=self.configuration.import_source_name,
        )
        self.results: dict[int, ActionResult] = {}
        #: Profiles the submission names, in order: each may be messaged once.
        self.named: dict[UUID, Subscriber] = {}
        self.request_profile: Subscriber | None = None
        #: Events to log on the submission once it is recorded.
        self.logged: list[dict[str, Any]] = []

    def apply(self) -> list[ActionResult]:
        for action in self.command.actions:
            if isinstance(action, ProfileAction):
                self.profile(action)
        for action in self.command.actions:
            if isinstance(action, EventAction):
                self.event(action)
            elif isinstance(action, MessageAction):
                self.message(action)
        self.trigger()
        return [self.results[a.index] for a in self.command.actions]

    # -- profiles

    def profile(self, action: ProfileAction) -> None:
        identify_by = self.configuration.identify_by
        value = action.identifier(identify_by)
        assert value is not None  # read_actions requires it
        holder = self.holder(identify_by, value)
        ip = self.command.facts.client_ip
        if holder is None:
            if not self.configuration.allow_profile_creation:
                self.refuse(action, "allowProfileCreation", "profile creation is off")
                return
            subscriber = Subscriber.register(
                id=uuid.uuid4(), provenance=self.provenance
            )
            self.work.add(subscriber)
            subscriber.apply_profile(action, provenance=self.provenance, client_ip=ip)
            self.claim_identifiers(subscriber, {})
            outcome = "created"
        else:
            if not self.configuration.allow_profile_updates:
                self.refuse(action, "allowProfileUpdates", "profile updates are off")
                return
            subscriber = holder
            before = dict(subscriber.values)
            outcome = subscriber.apply_profile(
                action, provenance=self.provenance, client_ip=ip
            )
            self.claim_identifiers(subscriber, before)
        self.work.touch(subscriber)
        self.results[action.index] = ActionResult(
            action=action.index,
            kind="profile",
            outcome=outcome,
            subscriber_id=subscriber.id,
        )
        self.named.setdefault(subscriber.id, subscriber)
        if self.request_profile is None:
            self.request_profile = subscriber

    def holder(self, name: str, value: str) -> Subscriber | None:
        claim = self.work.get(self.decider.claim_id(name, value), IdentityClaim)
        if claim is None or claim.holder is None:
            return None
        subscriber = self.work.get(claim.holder, Subscriber)
        return None if subscriber is None or subscriber.erased else subscriber

    def claim_identifiers(self, subscriber: Subscriber, before: dict[str, Any]) -> None:
        """Claim new identifying values that nobody holds; release dropped ones."""
        cause = (self.provenance.integration_id, self.provenance.submission_id)
        for name in IDENTIFIERS:
            old, new = before.get(name), subscriber.values.get(name)
            if old == new:
                continue
            if isinstance(old, str):
                claim = self.work.get(self.decider.claim_id(name, old), IdentityClaim)
                if claim is not None:
                    claim.release(subscriber.id, cause=cause)
                    self.work.touch(claim)
            if isinstance(new, str):
                claim_id = self.decider.claim_id(name, new)
                claim = self.work.get(claim_id, IdentityClaim)
                if claim is None:
                    claim = IdentityClaim.first(
                        id=claim_id, subscriber_id=subscriber.id, cause=cause
                    )
                    self.work.add(claim)
                else:
                    claim.claim(subscriber.id, cause=cause)
                self.work.touch(claim)

    def refuse(self, action: Action, flag: str, message: str) -> None:
        """A refusal that depends on whether a profile exists."""
        if self.command.facts.detailed:
            kind = _kind(action)
            raise ExistenceRefusal(ActionViolation(action.index, kind, flag, message))
        self.results[action.index] = ActionResult(
            action=action.index, kind=_kind(action), outcome="refused", refused=flag
        )

    # -- events and messages

    def target(self, target: str | None) -> Subscriber | None:
        if target is None:
            return self.request_profile
        return self.holder(self.configuration.identify_by, target)

    def event(self, action: EventAction) -> None:
        subscriber = self.target(action.target)
        if subscriber is None:
            self.refuse(action, "target", "no profile holds the target")
            return
        self.logged.append(
            {
                "subscriber_id": subscriber.id,
                "event_type": action.event_type,
                "data": dict(action.data) if action.data is not None else None,
                "activity_id": action.activity_id,
                "parent_id": action.parent_id,
            }
        )
        self.results[action.index] = ActionResult(
            action=action.index,
            kind="event",
            outcome="logged",
            subscriber_id=subscriber.id,
        )

    def message(self, action: MessageAction) -> None:
        subscriber = self.target(action.target)
        if subscriber is None:
            self.refuse(action, "target", "no profile holds the target")
            return
        self.named.setdefault(subscriber.id, subscriber)
        self.results[action.index] = ActionResult(
            action=action.index,
            kind="message",
            outcome="triggered",
            subscriber_id=subscriber.id,
        )

    def trigger(self) -> None:
        """Trigger the configured activity once for each profile named."""
        configuration = self.configuration
        activity = configuration.trigger_activity_id
        if not configuration.allow_messages or activity is None:
            return
        content = next(
            (
                dict(a.request_content)
                for a in self.command.actions
                if isinstance(a, MessageAction) and a.request_content is not None
            ),
            None,
        )
        for subscriber in self.named.values():
            outcome = subscriber.trigger(
                activity_id=activity,
                delivery_id=uuid.uuid4(),
                request_content=content,
                allow_unsubscribed=configuration.allow_messages_to_unsubscribed,
                limit=self.decider.trigger_limit,
                now=self.decider.now(),
                provenance=self.provenance,
            )
            self.work.touch(subscriber)
            for index, result in self.results.items():
                if result.kind == "message" and result.subscriber_id == subscriber.id:
                    self.results[index] = result.model_copy(update={"outcome": outcome})


def _kind(action: Action) -> Literal["profile", "event", "message"]:
    if isinstance(action, ProfileAction):
        return "profile"
    if isinstance(action, EventAction):
        return "event"
    return "message"


@dataclass
class _Pending:
    command: Command
    future: Future[Answer]


class SubmissionWriter:
    """The single writer of a process: decides and records commands in batches."""

    def __init__(
        self,
        store: EventStore,
        keys: SubjectKeys,
        decider: Decider,
        *,
        max_batch: int = MAX_BATCH,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._store = store
        self._keys = keys
        self._decider = decider
        self._max_batch = max_batch
        self._on_batch = on_batch
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._thread = threading.Thread(
            target=self._run, name="submission-writer", daemon=True
        )
        self._started = False
        self._start_lock = threading.Lock()

    def submit(self, command: Command) -> Future[Answer]:
        """Queue a command; the future resolves once it is durably recorded."""
        self._ensure_started()
        future: Future[Answer] = Future()
        self._queue.put(_Pending(command, future))
        return future

    def close(self) -> None:
        if self._started:
            self._queue.put(None)
            self._thread.join(timeout=30)

    def _ensure_started(self) -> None:
        with self._start_lock:
            if not self._started:
                self._thread.start()
                self._started = True

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                batch.append(item)
            self._write(batch)
            if self._on_batch is not None:
                self._on_batch(len(batch))

    def _write(self, batch: list[_Pending]) -> None:
        try:
            answers = self._attempt(batch)
        except ConcurrencyConflict:
            if len(batch) > 1:
                logger.debug("batch of %d conflicted; deciding each alone", len(batch))
            for pending in batch:
                self._write_alone(pending)
            return
        except Exception as error:
            for pending in batch:
                pending.future.set_exception(error)
            return
        for pending, answer in zip(batch, answers, strict=True):
            _resolve(pending, answer)

    def _write_alone(self, pending: _Pending) -> None:
        """Decide one command alone, retrying on fresh state while other
        writers keep winning; a jittered backoff lets them finish first."""
        for attempt in range(ATTEMPTS):
            try:
                recorded = self._already_recorded(pending.command)
                if recorded is not None:
                    pending.future.set_result(recorded)
                    return
                answer = self._attempt([pending])[0]
            except ConcurrencyConflict:
                time.sleep(random.uniform(0, RETRY_STEP_SECONDS * (attempt + 1)))  # noqa: S311
                continue
            except Exception as error:  # the caller answers 503 or 500
                pending.future.set_exception(error)
                return
            _resolve(pending, answer)
            return
        pending.future.set_exception(
            StoreUnavailable("the submission kept conflicting with other writers")
        )

    def _already_recorded(self, command: Command) -> Answer | None:
        """The answer of a command whose write committed although it seemed
        to fail (the connection broke after the commit, say).

        Its exact position is not known any more; the head is at least it.
        """
        history = self._store.history(command.submission_id)
        if not history or not isinstance(history[0], SubmissionRecorded):
            return None
        first = history[0]
        position = self._store.head()
        if isinstance(first, SubmissionDeduplicated):
            window = self._store.find(first.dedupe_window_id, DedupeWindow)
            return Answer(
                submission_id=first.original_submission_id,
                position=position,
                mode=first.mode,
                results=list(window.results) if window is not None else [],
                duplicate=True,
            )
        return Answer(
            submission_id=command.submission_id,
            position=position,
            mode=first.mode,
            results=list(getattr(first, "results", [])),
            refusal=getattr(first, "reason", None),
            violations=list(getattr(command, "violations", [])),
        )

    def _prefetch(self, batch: list[_Pending], work: UnitOfWork) -> None:
        """Load what the batch will read in two round trips instead of a few
        per submission: the claims and dedupe windows, then the subscribers
        holding those claims (with their keys, in one lookup)."""
        wanted: list[UUID] = []
        for pending in batch:
            wanted += self._decider.reads(pending.command)
        claims = work.load(wanted, self._store)
        holders = [
            c.holder for c in claims if isinstance(c, IdentityClaim) and c.holder
        ]
        work.load(holders, self._store)

    def _attempt(self, batch: list[_Pending]) -> list[Answer | Exception]:
        """Decide every command of `batch` and record them in one transaction.

        A command whose decision fails gets its error and changes nothing;
        the others are still recorded.
        """
        work = UnitOfWork(self._store)
        self._prefetch(batch, work)
        versions = self._store.versions(
            [p.command.integration.id for p in batch if isinstance(p.command, Decide)]
        )
        answers: list[Answer | Exception] = []
        for pending in batch:
            command = pending.command
            if (
                isinstance(command, Decide)
                and versions.get(command.integration.id) != command.integration.version
            ):
                answers.append(StaleIntegration(str(command.integration.id)))
                continue
            child = work.child()
            try:
                answers.append(self._decider.decide(pending.command, child))
            except (ConcurrencyConflict, StoreUnavailable):
                raise
            except Exception as error:  # the caller gets it; the batch goes on
                logger.exception("deciding a submission failed")
                answers.append(error)
                continue
            child.merge_into_parent()
        changed = work.changed()
        new_subjects = [
            a.id.hex for a in changed if isinstance(a, Subscriber) and a.is_new
        ]
        new_keys = self._keys.prepare_fresh(new_subjects) if new_subjects else None
        positions = self._store.record(*changed, new_keys=new_keys) if changed else {}
        return [
            answer
            if isinstance(answer, Exception)
            else _with_position(answer, positions, pending.command)
            for answer, pending in zip(answers, batch, strict=True)
        ]


def _resolve(pending: _Pending, answer: Answer | Exception) -> None:
    if isinstance(answer, Exception):
        pending.future.set_exception(answer)
    else:
        pending.future.set_result(answer)


def _with_position(
    answer: Answer, positions: dict[UUID, int], command: Command
) -> Answer:
    position = positions.get(command.submission_id, 0)
    return Answer(
        submission_id=answer.submission_id,
        position=position,
        mode=answer.mode,
        results=answer.results,
        duplicate=answer.duplicate,
        refusal=answer.refusal,
        violations=answer.violations,
    )
