"""The `EventStore` port, run against every adapter: SQLite and PostgreSQL.

`container.events` is the store under test; `container.database` reads the
rows it wrote, so that what is kept at rest is checked too.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID, uuid4

import pytest

from api.bootstrap import Container
from application.errors import ConcurrencyConflict
from domain.access import FirstAdmin
from domain.integration import (
    INTEGRATION_TYPE,
    Endpoint,
    EndpointIssued,
    Integration,
    IntegrationActivated,
    IntegrationCreated,
    IntegrationSaved,
    SecretUpdate,
    Status,
    new_endpoint_id,
)
from domain.model import Actor
from infrastructure import chain

MANAGER = Actor(kind="token", name="integration manager", id="token-1")
SECRET = "6Lc-captcha-secret-that-must-not-leak"


def new_integration(name: str = "Shop") -> Integration:
    return Integration.create(
        name=name,
        integration_type=INTEGRATION_TYPE,
        endpoint_id=new_endpoint_id(),
        actor=MANAGER,
    )


def save_configuration(
    integration: Integration, configuration: dict[str, Any] | None = None
) -> None:
    integration.save_changes(
        configuration or {"name": integration.name},
        secret=SecretUpdate.keep(),
        actor=MANAGER,
    )


def stored(container: Container, integration: Integration) -> Integration:
    found = container.events.find(integration.id, Integration)
    assert found is not None
    return found


def state_of(integration: Integration) -> dict[str, Any]:
    return {k: v for k, v in vars(integration).items() if k != "_pending_events"}


def stored_rows(container: Container) -> list[tuple[int, UUID, int, str, bytes]]:
    """Every row of the events table, as the database holds it."""
    if container.database.dialect == "sqlite":
        table, position = "stored_events", "rowid"
    else:
        table, position = "headwater_events", "notification_id"
    with container.database.reading() as cursor:
        cursor.execute(
            f"SELECT {position}, originator_id, originator_version, topic, state"
            f" FROM {table} ORDER BY {position}"
        )
        rows = cursor.fetchall()
    return [
        (int(row[0]), UUID(str(row[1])), int(row[2]), str(row[3]), bytes(row[4]))
        for row in rows
    ]


def chain_rows(container: Container) -> list[tuple[int, bytes]]:
    with container.database.reading() as cursor:
        cursor.execute("SELECT position, link FROM event_chain ORDER BY position")
        return [(int(row[0]), bytes(row[1])) for row in cursor.fetchall()]


def recomputed_links(
    rows: list[tuple[int, UUID, int, str, bytes]],
) -> list[tuple[int, bytes]]:
    """The chain as `infrastructure.chain` computes it from the stored rows."""
    links, previous = [], chain.GENESIS
    for position, originator_id, version, topic, state in rows:
        previous = chain.link(
            previous,
            position=position,
            originator_id=originator_id,
            originator_version=version,
            topic=topic,
            state=state,
        )
        links.append((position, previous))
    return links


# -- save, head and positions


def test_the_head_of_an_empty_store_is_zero(container: Container) -> None:
    head = container.events.head()

    assert head == 0


def test_saving_returns_the_position_of_the_last_event(container: Container) -> None:
    integration = new_integration()
    save_configuration(integration)
    integration.activate(actor=MANAGER)

    position = container.events.save(integration)

    recorded = container.events.read(after=0, limit=10)
    assert [r.event.originator_version for r in recorded] == [1, 2, 3]
    assert position == recorded[-1].position
    assert position == container.events.head()


def test_saving_an_aggregate_without_new_events_returns_none(
    container: Container,
) -> None:
    integration = new_integration()
    container.events.save(integration)
    head = container.events.head()

    position = container.events.save(integration)

    assert position is None
    assert container.events.head() == head


def test_positions_increase_from_one_save_to_the_next(container: Container) -> None:
    first = container.events.save(new_integration("First"))

    second = container.events.save(new_integration("Second"))

    assert first is not None
    assert second is not None
    assert second > first


def test_positions_increase_within_one_save(container: Container) -> None:
    integration = new_integration()
    endpoint = Endpoint.issue(
        endpoint_id=integration.endpoint_id, integration_id=integration.id
    )

    container.events.save(integration, endpoint)

    positions = [r.position for r in container.events.read(after=0, limit=10)]
    assert len(positions) == 2
    assert positions == sorted(set(positions))


# -- find, find_as_of and history


def test_find_returns_the_aggregate_as_it_was_saved(container: Container) -> None:
    integration = new_integration()
    save_configuration(integration, {"name": "Shop", "allowProfileCreation": True})
    integration.activate(actor=MANAGER)
    container.events.save(integration)

    found = stored(container, integration)

    assert state_of(found) == state_of(integration)
    assert found.version == 3
    assert found.status is Status.ACTIVE


def test_find_returns_none_for_an_unknown_id(container: Container) -> None:
    found = container.events.find(uuid4(), Integration)

    assert found is None


def test_find_returns_none_for_the_id_of_another_kind_of_aggregate(
    container: Container,
) -> None:
    integration = new_integration()
    endpoint = Endpoint.issue(
        endpoint_id=integration.endpoint_id, integration_id=integration.id
    )
    container.events.save(integration, endpoint)

    found = container.events.find(endpoint.id, Integration)

    assert found is None
    assert container.events.find(endpoint.id, Endpoint) is not None


def test_find_as_of_returns_the_state_at_that_instant(container: Container) -> None:
    integration = new_integration()
    container.events.save(integration)
    save_configuration(integration)
    container.events.save(integration)
    integration.activate(actor=MANAGER)
    container.events.save(integration)
    created, saved, activated = container.events.history(integration.id)

    at_creation = container.events.find_as_of(
        integration.id, Integration, created.timestamp
    )
    at_save = container.events.find_as_of(integration.id, Integration, saved.timestamp)
    now = container.events.find_as_of(integration.id, Integration, activated.timestamp)

    assert at_creation is not None
    assert (at_creation.version, at_creation.saved) == (1, False)
    assert at_save is not None
    assert (at_save.version, at_save.saved, at_save.status) == (
        2,
        True,
        Status.INACTIVE,
    )
    assert now is not None
    assert (now.version, now.status) == (3, Status.ACTIVE)


def test_find_as_of_before_creation_returns_none(container: Container) -> None:
    integration = new_integration()
    container.events.save(integration)
    [created] = container.events.history(integration.id)

    found = container.events.find_as_of(
        integration.id, Integration, created.timestamp.replace(year=2000)
    )

    assert found is None


def test_history_lists_every_event_of_one_aggregate_oldest_first(
    container: Container,
) -> None:
    integration = new_integration()
    save_configuration(integration)
    integration.activate(actor=MANAGER)
    other = new_integration("Other")
    container.events.save(integration, other)

    history = container.events.history(integration.id)

    assert [type(event) for event in history] == [
        IntegrationCreated,
        IntegrationSaved,
        IntegrationActivated,
    ]
    assert {event.originator_id for event in history} == {integration.id}


def test_the_history_of_an_unknown_id_is_empty(container: Container) -> None:
    history = container.events.history(uuid4())

    assert history == []


# -- read


def test_read_pages_through_the_log_in_order(container: Container) -> None:
    for number in range(5):
        integration = new_integration(f"Shop {number}")
        save_configuration(integration)
        container.events.save(integration)
    everything = container.events.read(after=0, limit=100)

    pages, after = [], 0
    while page := container.events.read(after=after, limit=3):
        pages.append(page)
        after = page[-1].position

    assert len(everything) == 10
    assert [len(page) for page in pages] == [3, 3, 3, 1]
    assert [r.position for page in pages for r in page] == [
        r.position for r in everything
    ]
    assert [r.position for r in everything] == sorted(r.position for r in everything)


def test_read_returns_only_events_of_the_given_types(container: Container) -> None:
    integration = new_integration()
    endpoint = Endpoint.issue(
        endpoint_id=integration.endpoint_id, integration_id=integration.id
    )
    save_configuration(integration)
    container.events.save(integration, endpoint)

    recorded = container.events.read(
        after=0, limit=10, types=[IntegrationCreated, EndpointIssued]
    )

    assert [type(r.event) for r in recorded] == [IntegrationCreated, EndpointIssued]


def test_read_after_the_head_is_empty(container: Container) -> None:
    container.events.save(new_integration())

    recorded = container.events.read(after=container.events.head(), limit=10)

    assert recorded == []


# -- concurrency


def test_saving_a_stale_copy_is_a_conflict_and_stores_nothing(
    container: Container,
) -> None:
    integration = new_integration()
    save_configuration(integration)
    container.events.save(integration)
    fresh, stale = stored(container, integration), stored(container, integration)
    fresh.activate(actor=MANAGER)
    container.events.save(fresh)
    head = container.events.head()
    stale.rotate_endpoint(endpoint_id=new_endpoint_id(), actor=MANAGER)

    with pytest.raises(ConcurrencyConflict):
        container.events.save(stale)

    assert container.events.head() == head
    assert stored(container, integration).endpoint_id == integration.endpoint_id
    assert len(container.events.history(integration.id)) == 3


def test_a_save_where_one_aggregate_conflicts_stores_neither(
    container: Container,
) -> None:
    existing = new_integration("Existing")
    container.events.save(existing)
    fresh, stale = stored(container, existing), stored(container, existing)
    save_configuration(fresh)
    container.events.save(fresh)
    head = container.events.head()
    newcomer = new_integration("Newcomer")
    save_configuration(stale)

    with pytest.raises(ConcurrencyConflict):
        container.events.save(newcomer, stale)

    assert container.events.find(newcomer.id, Integration) is None
    assert container.events.head() == head


def test_a_second_first_admin_marker_is_a_conflict(container: Container) -> None:
    container.events.save(FirstAdmin.record(token_id=uuid4()))

    with pytest.raises(ConcurrencyConflict):
        container.events.save(FirstAdmin.record(token_id=uuid4()))

    assert len(container.events.history(FirstAdmin.ID)) == 1


# -- what is kept at rest


def test_the_captcha_secret_is_not_stored_in_clear(container: Container) -> None:
    integration = new_integration()
    integration.save_changes(
        {"name": "Shop", "requireRecaptcha": True},
        secret=SecretUpdate("set", SECRET),
        actor=MANAGER,
    )
    integration.save_changes(
        {"name": "Shop", "requireRecaptcha": True},
        secret=SecretUpdate("set", SECRET[::-1]),
        actor=MANAGER,
    )
    container.events.save(integration)

    states = [state for *_, state in stored_rows(container)]

    secret_read_back = stored(container, integration).recaptcha_secret
    assert secret_read_back is not None
    assert secret_read_back.get_secret_value() == SECRET[::-1]
    assert len(states) == 3
    assert not any(SECRET.encode() in state for state in states)
    assert not any(SECRET[::-1].encode() in state for state in states)


def test_every_event_has_exactly_one_chain_link(container: Container) -> None:
    for number in range(3):
        integration = new_integration(f"Shop {number}")
        save_configuration(integration)
        container.events.save(integration)

    links = chain_rows(container)

    positions = [position for position, *_ in stored_rows(container)]
    assert len(positions) == 6
    assert [position for position, _ in links] == positions


def test_the_chain_links_recompute_from_the_stored_rows(container: Container) -> None:
    integration = new_integration()
    endpoint = Endpoint.issue(
        endpoint_id=integration.endpoint_id, integration_id=integration.id
    )
    container.events.save(integration, endpoint)
    save_configuration(integration)
    integration.activate(actor=MANAGER)
    container.events.save(integration)

    links = chain_rows(container)

    assert len(links) == 4
    assert links == recomputed_links(stored_rows(container))


def test_events_saved_by_several_threads_at_once_are_chained_in_log_order(
    container: Container,
) -> None:
    threads, saves_per_thread = 4, 5
    start = threading.Barrier(threads)

    def save_integrations() -> None:
        start.wait()
        for _ in range(saves_per_thread):
            container.events.save(new_integration())

    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(save_integrations) for _ in range(threads)]:
            future.result()

    rows = stored_rows(container)
    assert len(rows) == threads * saves_per_thread
    assert chain_rows(container) == recomputed_links(rows)
