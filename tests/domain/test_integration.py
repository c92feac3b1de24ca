"""The integration aggregate: its lifecycle, what each step records, and that
its events rebuild it."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from domain.errors import InvalidInput, StateConflict
from domain.integration import (
    INTEGRATION_TYPE,
    EndpointRotated,
    FieldChange,
    Integration,
    IntegrationActivated,
    IntegrationCreated,
    IntegrationDeactivated,
    IntegrationSaved,
    IntegrationUpdated,
    SecretUpdate,
    Status,
    is_endpoint_id,
    new_endpoint_id,
)
from domain.model import Actor

MANAGER = Actor(kind="token", name="integration manager", id="token-1")
SECRET = "6Lc-very-secret-captcha-key"


def created(name: str = "Shop") -> Integration:
    """A new integration whose creation event has been handed over."""
    integration = Integration.create(
        name=name,
        integration_type=INTEGRATION_TYPE,
        endpoint_id=new_endpoint_id(),
        actor=MANAGER,
    )
    integration.collect_events()
    return integration


def saved(
    configuration: dict[str, Any] | None = None,
    *,
    secret: SecretUpdate | None = None,
) -> Integration:
    """A saved integration, its events handed over."""
    integration = created()
    integration.save_changes(
        configuration or {"name": "Shop"},
        secret=secret or SecretUpdate.keep(),
        actor=MANAGER,
    )
    integration.collect_events()
    return integration


def state_of(integration: Integration) -> dict[str, Any]:
    return {k: v for k, v in vars(integration).items() if k != "_pending_events"}


def test_creating_an_integration_records_one_created_event() -> None:
    integration = Integration.create(
        name="Shop",
        integration_type=INTEGRATION_TYPE,
        endpoint_id="endpoint-id-of-twenty-two",
        actor=MANAGER,
    )

    events = integration.collect_events()

    assert [type(event) for event in events] == [IntegrationCreated]
    assert isinstance(events[0], IntegrationCreated)
    assert events[0].endpoint_id == "endpoint-id-of-twenty-two"
    assert events[0].actor == MANAGER


def test_a_new_integration_is_inactive_unsaved_and_at_version_one() -> None:
    integration = created()

    assert integration.status is Status.INACTIVE
    assert integration.saved is False
    assert integration.version == 1
    assert integration.configuration_version is None


def test_creating_an_integration_of_an_unknown_type_is_invalid_input() -> None:
    with pytest.raises(InvalidInput) as refused:
        Integration.create(
            name="Shop",
            integration_type="v4-api-endpoint",
            endpoint_id=new_endpoint_id(),
            actor=MANAGER,
        )

    assert [(p.field, p.rule) for p in refused.value.problems] == [("type", "enum")]


@pytest.mark.parametrize("name", ["", "x" * 201])
def test_creating_an_integration_with_a_name_of_bad_length_is_invalid_input(
    name: str,
) -> None:
    with pytest.raises(InvalidInput) as refused:
        Integration.create(
            name=name,
            integration_type=INTEGRATION_TYPE,
            endpoint_id=new_endpoint_id(),
            actor=MANAGER,
        )

    assert [p.field for p in refused.value.problems] == ["name"]


def test_activating_an_unsaved_integration_is_a_state_conflict() -> None:
    integration = created()

    with pytest.raises(StateConflict, match="save"):
        integration.activate(actor=MANAGER)

    assert integration.collect_events() == []
    assert integration.status is Status.INACTIVE


def test_the_first_save_records_one_saved_event() -> None:
    integration = created()

    integration.save_changes(
        {"name": "Shop", "allowProfileCreation": True},
        secret=SecretUpdate.keep(),
        actor=MANAGER,
    )

    events = integration.collect_events()
    assert [type(event) for event in events] == [IntegrationSaved]
    assert integration.saved is True
    assert integration.configuration.allow_profile_creation is True


def test_a_later_save_records_one_updated_event() -> None:
    integration = saved()

    integration.save_changes(
        {"name": "Shop", "allowProfileCreation": True},
        secret=SecretUpdate.keep(),
        actor=MANAGER,
    )

    assert [type(e) for e in integration.collect_events()] == [IntegrationUpdated]


def test_activating_a_saved_integration_records_one_event() -> None:
    integration = saved()

    integration.activate(actor=MANAGER)

    events = integration.collect_events()
    assert [type(event) for event in events] == [IntegrationActivated]
    assert integration.status is Status.ACTIVE


def test_deactivating_an_active_integration_records_one_event() -> None:
    integration = saved()
    integration.activate(actor=MANAGER)
    integration.collect_events()

    integration.deactivate(actor=MANAGER)

    events = integration.collect_events()
    assert [type(event) for event in events] == [IntegrationDeactivated]
    assert integration.status is Status.INACTIVE


def test_rotating_the_endpoint_records_the_old_and_the_new_endpoint() -> None:
    integration = saved()
    old_endpoint = integration.endpoint_id
    new_endpoint = new_endpoint_id()

    integration.rotate_endpoint(endpoint_id=new_endpoint, actor=MANAGER)

    events = integration.collect_events()
    assert len(events) == 1
    assert isinstance(events[0], EndpointRotated)
    assert events[0].previous_endpoint_id == old_endpoint
    assert events[0].endpoint_id == new_endpoint
    assert integration.endpoint_id == new_endpoint


def test_activating_an_active_integration_records_nothing() -> None:
    integration = saved()
    integration.activate(actor=MANAGER)
    integration.collect_events()

    integration.activate(actor=MANAGER)

    assert integration.collect_events() == []
    assert integration.version == 3


def test_deactivating_an_inactive_integration_records_nothing() -> None:
    integration = saved()

    integration.deactivate(actor=MANAGER)

    assert integration.collect_events() == []
    assert integration.version == 2


def test_saving_an_identical_configuration_records_nothing() -> None:
    configuration = {"name": "Shop", "allowedOrigins": ["https://shop.example"]}
    integration = saved(configuration)

    integration.save_changes(
        {"name": "Shop", "allowedOrigins": ["https://SHOP.example/"]},
        secret=SecretUpdate.keep(),
        actor=MANAGER,
    )

    assert integration.collect_events() == []
    assert integration.version == 2


def test_saving_an_identical_configuration_with_the_same_secret_records_nothing() -> (
    None
):
    configuration = {"name": "Shop", "requireRecaptcha": True}
    integration = saved(configuration, secret=SecretUpdate("set", SECRET))

    integration.save_changes(
        configuration, secret=SecretUpdate("set", SECRET), actor=MANAGER
    )

    assert integration.collect_events() == []


def test_an_invalid_save_records_nothing_and_keeps_the_configuration() -> None:
    integration = saved({"name": "Shop", "dedupePeriodSeconds": 60})

    with pytest.raises(InvalidInput):
        integration.save_changes(
            {"name": "Shop", "dedupePeriodSeconds": -1},
            secret=SecretUpdate.keep(),
            actor=MANAGER,
        )

    assert integration.collect_events() == []
    assert integration.configuration.dedupe_period_seconds == 60


def test_the_version_counts_every_recorded_event() -> None:
    integration = created()
    integration.save_changes(
        {"name": "Shop"}, secret=SecretUpdate.keep(), actor=MANAGER
    )
    integration.activate(actor=MANAGER)
    integration.rotate_endpoint(endpoint_id=new_endpoint_id(), actor=MANAGER)
    integration.deactivate(actor=MANAGER)

    events = integration.collect_events()

    assert integration.version == 5
    assert [event.originator_version for event in events] == [2, 3, 4, 5]


def test_the_configuration_version_is_the_version_of_the_last_save() -> None:
    integration = saved()
    integration.activate(actor=MANAGER)
    version_after_activating = integration.configuration_version

    integration.save_changes(
        {"name": "Shop", "detailedResponses": True},
        secret=SecretUpdate.keep(),
        actor=MANAGER,
    )

    assert version_after_activating == 2
    assert integration.version == 4
    assert integration.configuration_version == 4


def test_an_update_carries_only_the_changed_fields_as_from_and_to() -> None:
    integration = saved({"name": "Shop", "dedupePeriodSeconds": 60})

    integration.save_changes(
        {"name": "Shop", "dedupePeriodSeconds": 120, "allowEventLogging": True},
        secret=SecretUpdate.keep(),
        actor=MANAGER,
    )

    [event] = integration.collect_events()
    assert isinstance(event, IntegrationUpdated)
    assert event.changes == {
        "dedupePeriodSeconds": FieldChange(before=60, after=120),
        "allowEventLogging": FieldChange(before=False, after=True),
    }
    assert event.model_dump(mode="json", by_alias=True)["changes"] == {
        "dedupePeriodSeconds": {"from": 60, "to": 120},
        "allowEventLogging": {"from": False, "to": True},
    }
    assert event.secret_change is None


def test_a_field_left_out_of_a_later_save_goes_back_to_its_default() -> None:
    integration = saved({"name": "Shop", "honeypotField": "website"})

    integration.save_changes(
        {"name": "Shop"}, secret=SecretUpdate.keep(), actor=MANAGER
    )

    [event] = integration.collect_events()
    assert isinstance(event, IntegrationUpdated)
    assert event.changes == {"honeypotField": FieldChange(before="website", after=None)}
    assert integration.configuration.honeypot_field is None


def test_setting_a_secret_on_a_later_save_is_recorded_as_set() -> None:
    integration = saved()

    integration.save_changes(
        {"name": "Shop"}, secret=SecretUpdate("set", SECRET), actor=MANAGER
    )

    [event] = integration.collect_events()
    assert isinstance(event, IntegrationUpdated)
    assert event.secret_change == "set"
    assert event.changes == {}
    assert event.recaptcha_secret is not None
    assert event.recaptcha_secret.get_secret_value() == SECRET


def test_changing_the_secret_is_recorded_as_changed() -> None:
    integration = saved(secret=SecretUpdate("set", SECRET))

    integration.save_changes(
        {"name": "Shop"}, secret=SecretUpdate("set", "another-secret"), actor=MANAGER
    )

    [event] = integration.collect_events()
    assert isinstance(event, IntegrationUpdated)
    assert event.secret_change == "changed"
    assert integration.recaptcha_secret is not None
    assert integration.recaptcha_secret.get_secret_value() == "another-secret"


def test_clearing_the_secret_is_recorded_as_cleared_without_a_value() -> None:
    integration = saved(secret=SecretUpdate("set", SECRET))

    integration.save_changes(
        {"name": "Shop"}, secret=SecretUpdate("clear"), actor=MANAGER
    )

    [event] = integration.collect_events()
    assert isinstance(event, IntegrationUpdated)
    assert event.secret_change == "cleared"
    assert event.recaptcha_secret is None
    assert integration.recaptcha_secret is None


def test_clearing_a_secret_that_recaptcha_requires_is_invalid_input() -> None:
    configuration = {"name": "Shop", "requireRecaptcha": True}
    integration = saved(configuration, secret=SecretUpdate("set", SECRET))

    with pytest.raises(InvalidInput) as refused:
        integration.save_changes(
            configuration, secret=SecretUpdate("clear"), actor=MANAGER
        )

    assert [p.field for p in refused.value.problems] == ["recaptchaSecret"]
    assert integration.recaptcha_secret is not None


def test_the_secret_never_shows_in_a_repr() -> None:
    integration = created()
    integration.save_changes(
        {"name": "Shop"}, secret=SecretUpdate("set", SECRET), actor=MANAGER
    )
    integration.save_changes(
        {"name": "Shop"}, secret=SecretUpdate("set", SECRET + "-2"), actor=MANAGER
    )

    events = integration.collect_events()

    shown = [repr(event) for event in events] + [str(event) for event in events]
    shown.append(repr(integration.recaptcha_secret))
    assert len(events) == 2
    assert not any(SECRET in text for text in shown)


def test_rotating_the_endpoint_changes_the_endpoint_id() -> None:
    integration = saved()
    before = integration.endpoint_id

    integration.rotate_endpoint(endpoint_id=new_endpoint_id(), actor=MANAGER)

    assert integration.endpoint_id != before
    assert is_endpoint_id(integration.endpoint_id)


def test_an_endpoint_id_carries_at_least_128_random_bits() -> None:
    endpoint_id = new_endpoint_id()

    decoded = base64.urlsafe_b64decode(endpoint_id + "=" * (-len(endpoint_id) % 4))

    assert is_endpoint_id(endpoint_id)
    assert len(decoded) * 8 >= 128
    assert base64.urlsafe_b64encode(decoded).rstrip(b"=").decode() == endpoint_id


def test_endpoint_ids_do_not_repeat() -> None:
    draws = 20_000

    endpoint_ids = {new_endpoint_id() for _ in range(draws)}

    assert len(endpoint_ids) == draws


def test_endpoint_ids_use_the_whole_url_safe_alphabet() -> None:
    endpoint_ids = [new_endpoint_id() for _ in range(2_000)]

    characters = set("".join(endpoint_ids))

    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    assert characters == set(alphabet)


@pytest.mark.parametrize(
    "value", ["", "short", "a" * 65, "a" * 31 + "/", "a" * 32 + "\n", "a" * 31 + "="]
)
def test_a_malformed_endpoint_id_is_not_an_endpoint_id(value: str) -> None:
    assert not is_endpoint_id(value)


def test_replaying_the_recorded_events_rebuilds_an_equal_integration() -> None:
    integration = Integration.create(
        name="Shop",
        integration_type=INTEGRATION_TYPE,
        endpoint_id=new_endpoint_id(),
        actor=MANAGER,
    )
    integration.save_changes(
        {
            "name": "Shop",
            "requireRecaptcha": True,
            "allowedOrigins": ["https://a.example"],
        },
        secret=SecretUpdate("set", SECRET),
        actor=MANAGER,
    )
    integration.activate(actor=MANAGER)
    integration.save_changes(
        {"name": "Shop 2", "fieldValidationRules": {"firstname": {"maxLength": 5}}},
        secret=SecretUpdate("clear"),
        actor=MANAGER,
    )
    integration.rotate_endpoint(endpoint_id=new_endpoint_id(), actor=MANAGER)
    integration.deactivate(actor=MANAGER)
    events = integration.collect_events()

    rebuilt: Any = None
    for event in events:
        rebuilt = event.mutate(rebuilt)

    assert isinstance(rebuilt, Integration)
    assert state_of(rebuilt) == state_of(integration)


def test_an_event_out_of_order_is_refused_when_replayed() -> None:
    integration = Integration.create(
        name="Shop",
        integration_type=INTEGRATION_TYPE,
        endpoint_id=new_endpoint_id(),
        actor=MANAGER,
    )
    integration.save_changes(
        {"name": "Shop"}, secret=SecretUpdate.keep(), actor=MANAGER
    )
    integration.activate(actor=MANAGER)
    creation, _, activation = integration.collect_events()
    replayed = creation.mutate(None)

    with pytest.raises(ValueError, match="does not follow"):
        activation.mutate(replayed)

    assert replayed.version == 1
    assert replayed.status is Status.INACTIVE


def test_an_event_of_another_integration_is_refused_when_replayed() -> None:
    other = saved()
    other.activate(actor=MANAGER)
    [activated] = other.collect_events()
    integration = saved()

    with pytest.raises(ValueError, match="applied to"):
        activated.mutate(integration)

    assert integration.status is Status.INACTIVE
