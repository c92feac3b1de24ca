"""Fixtures for the delivery tests: a scripted webhook receiver, a service
configured to deliver to it, and ways to trigger messages and watch what
became of them through the admin API and the event store.

The `container` here is built but not started: a test may first replace its
channel (a short client timeout, another URL), then calls `started` or
`container.run_background()` itself, as `headwater serve` does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final, TypeVar
from uuid import UUID

import pytest
from starlette.testclient import TestClient

from api.bootstrap import Container, build
from api.http.app import create_app
from api.settings import Settings
from domain.access import Role
from domain.delivery import DeliverySucceeded
from domain.model import Actor, DomainEvent
from domain.subscriber import MessageTriggered
from tests.support.receiver import Receiver

SECRET: Final = "whsec-delivery-tests-0123456789"
ACTIVITY: Final = 42
LEASE_SECONDS: Final = 2
MAX_ATTEMPTS: Final = 3
DELIVERIES: Final = "/admin/v1/deliveries"
INTEGRATIONS: Final = "/admin/v1/integrations"
INTEGRATION_TYPE: Final = "v5-api-endpoint-unauthenticated"
#: An endpoint that creates and updates profiles and triggers ACTIVITY.
MESSAGES: Final[dict[str, Any]] = {
    "allowProfileCreation": True,
    "allowProfileUpdates": True,
    "detailedResponses": True,
    "allowMessages": True,
    "triggerActivityId": ACTIVITY,
}
#: How long a test waits for something the worker does within seconds.
PATIENCE: Final = 20.0

Json = dict[str, Any]
E = TypeVar("E", bound=DomainEvent)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def webhook_url(receiver: Receiver) -> str | None:
    """Where the service delivers; a test parametrizes it to None for a
    service without a channel."""
    return receiver.url


@pytest.fixture
def settings(settings: Settings, webhook_url: str | None) -> Settings:
    """Delivery to the receiver, signed, with a short lease and few attempts."""
    return settings.model_copy(
        update={
            "delivery_webhook_url": webhook_url,
            "delivery_signing_secret": SECRET if webhook_url else None,
            "delivery_lease_seconds": LEASE_SECONDS,
            "delivery_max_attempts": MAX_ATTEMPTS,
        }
    )


@pytest.fixture
def container(settings: Settings) -> Iterator[Container]:
    """The services over a fresh store, not started yet."""
    built = build(settings)
    try:
        yield built
    finally:
        shut_down(built)


def shut_down(container: Container) -> None:
    """Close the container, telling its background threads to stop all at
    once and waking them, rather than waiting for each to notice in turn."""
    for supervisor in container.supervisors:
        supervisor.stop(timeout=0)
    container.projected.set()
    container.recorded.set()
    container.close()


@pytest.fixture
def started(container: Container) -> Container:
    """The container running its projections and its delivery worker."""
    container.run_background()
    return container


@dataclass(frozen=True)
class Triggered:
    """A message a submission triggered, and when the submission was sent."""

    delivery_id: str
    subscriber_id: str
    submission_id: str
    integration_id: str
    #: `time.monotonic()` just before the submission was posted.
    submitted_at: float


class Service:
    """Headwater as a test drives it: the admin API, the public endpoint and
    the events in the store."""

    def __init__(self, container: Container, admin: TestClient) -> None:
        self.container = container
        self.admin = admin

    def open_endpoint(self, configuration: Json | None = None) -> Json:
        """An active integration that triggers ACTIVITY (or as configured)."""
        created = self.admin.post(
            INTEGRATIONS, json={"name": "Signup", "type": INTEGRATION_TYPE}
        )
        assert created.status_code == 201, created.text
        integration_id = created.json()["id"]
        saved = self.admin.put(
            f"{INTEGRATIONS}/{integration_id}",
            json={"name": "Signup", **(configuration or MESSAGES)},
        )
        assert saved.status_code == 200, saved.text
        activated = self.admin.post(f"{INTEGRATIONS}/{integration_id}/activate")
        assert activated.status_code == 200, activated.text
        integration: Json = activated.json()
        return integration

    def submit(self, integration: Json, body: Any) -> Json:
        """Post to the production endpoint, without credentials; must be 200."""
        with TestClient(create_app(self.container)) as public:
            answer = public.post(
                f"/v5/endpoints/{integration['endpointId']}", json=body
            )
        assert answer.status_code == 200, answer.text
        accepted: Json = answer.json()
        return accepted

    def trigger(
        self,
        integration: Json,
        email: str,
        *,
        request_content: Json | None = None,
        **profile: str,
    ) -> Triggered:
        """Submit a profile (and a message with `request_content`, if given);
        the message the submission triggered for the profile."""
        actions: list[Json] = [{"profile": {"email": email, **profile}}]
        if request_content is not None:
            activity = integration["triggerActivityId"]
            message = {"activityId": activity, "requestContent": request_content}
            actions.append({"message": message})
        submitted_at = time.monotonic()

        answer = self.submit(integration, actions)

        (triggered,) = [
            event
            for event in self.events(MessageTriggered)
            if str(event.submission_id) == answer["submissionId"]
        ]
        return Triggered(
            delivery_id=str(triggered.delivery_id),
            subscriber_id=str(triggered.originator_id),
            submission_id=answer["submissionId"],
            integration_id=integration["id"],
            submitted_at=submitted_at,
        )

    def events(self, kind: type[E]) -> list[E]:
        """Every event of `kind` in the store, decoded and opened."""
        found = self.container.events.read(after=0, limit=10_000, types=[kind])
        return [r.event for r in found if isinstance(r.event, kind)]

    def listing(self, **query: Any) -> Json:
        answer = self.admin.get(DELIVERIES, params=query)
        assert answer.status_code == 200, answer.text
        page: Json = answer.json()
        return page

    def delivery(self, delivery_id: str) -> Json | None:
        """The delivery as GET /deliveries shows it; None while not projected."""
        for item in self.listing(limit=500)["items"]:
            if item["id"] == delivery_id:
                found: Json = item
                return found
        return None

    def wait_for_status(
        self, delivery_id: str, status: str, *, timeout: float = PATIENCE
    ) -> Json:
        """The delivery once GET /deliveries shows it with `status`."""
        return eventually(
            lambda: self._with_status(delivery_id, status),
            timeout=timeout,
            what=f"delivery {delivery_id} to be {status}",
        )

    def _with_status(self, delivery_id: str, status: str) -> Json | None:
        shown = self.delivery(delivery_id)
        return shown if shown is not None and shown["status"] == status else None

    def audit(self, action: str, *, count: int, subject_id: str) -> list[Json]:
        """The audit entries of `action` for a subject, once there are `count`."""

        def entries() -> list[Json] | None:
            answer = self.admin.get(
                "/admin/v1/audit",
                params={"action": action, "subjectId": subject_id, "limit": 100},
            )
            assert answer.status_code == 200, answer.text
            items: list[Json] = answer.json()["items"]
            return items if len(items) >= count else None

        return eventually(
            entries, timeout=PATIENCE, what=f"{count} {action} audit entries"
        )

    def headers_of(self, role: Role) -> dict[str, str]:
        """Authorization for a new token of `role`."""
        issued = self.container.tokens.issue(
            name=f"a {role.value}", role=role, expires_at=None, actor=Actor.system()
        )
        return {"Authorization": f"Bearer {issued.secret}"}


T = TypeVar("T")


def eventually(
    probe: Callable[[], T | None], *, timeout: float, what: str, every: float = 0.05
) -> T:
    """What `probe` answers once it answers something other than None."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            msg = f"waited {timeout} s for {what}"
            raise TimeoutError(msg)
        time.sleep(every)


@pytest.fixture
def service(container: Container, admin: TestClient) -> Service:
    return Service(container, admin)


@pytest.fixture
def endpoint(service: Service) -> Json:
    return service.open_endpoint()


def receipt_ids(service: Service) -> list[UUID]:
    """The delivery ids of every recorded success, repeats included."""
    return [event.delivery_id for event in service.events(DeliverySucceeded)]
