"""Encryption of the sensitive fields of events, value by value.

An event class marks its sensitive fields with `domain.model.Sensitive`. Each
non-null value inside such a field is replaced in the stored JSON by an
envelope, `<key id>:<base64 of nonce and AES-GCM ciphertext>`. Field names and
the shape of the data stay readable; the values do not. When a key has been
destroyed, the values it protected read back as null and the event is marked
`erased`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import cache
from typing import Any, Final
from uuid import UUID

import orjson
from cryptography.exceptions import InvalidTag
from pydantic import SecretStr

from application.ports import SubjectKeys
from domain.model import DomainEvent, Sensitive
from infrastructure.crypto import DeploymentKey, from_text, open_sealed, seal, to_text

DEPLOYMENT_KEY_ID: Final = "deployment"
DAY_PREFIX: Final = "day-"


class MissingSubjectKey(RuntimeError):
    """Personal data was about to be written for a subject without a key."""


@cache
def sensitive_fields(
    event_type: type[DomainEvent],
) -> tuple[tuple[str, str, Sensitive], ...]:
    """(attribute, stored name, marker) for each sensitive field of a class."""
    found = []
    for name, info in event_type.model_fields.items():
        for marker in info.metadata:
            if isinstance(marker, Sensitive):
                found.append((name, info.alias or name, marker))
    return tuple(found)


def day_key_id(moment: datetime) -> str:
    """The key id for request metadata recorded at `moment` (UTC day)."""
    return f"{DAY_PREFIX}{moment.date().isoformat()}"


def subject_key_id(subject: UUID) -> str:
    return subject.hex


class FieldSealer:
    """Seals and opens the sensitive fields of stored event state."""

    def __init__(self, keys: SubjectKeys, deployment_key: DeploymentKey) -> None:
        self._keys = keys
        self._deployment = deployment_key.derive("configuration-secrets")

    # -- writing

    def seal(self, event: DomainEvent, state: dict[str, Any]) -> None:
        """Replace the sensitive values in `state` (the event's stored form)."""
        for _, stored_name, marker in sensitive_fields(type(event)):
            value = state.get(stored_name)
            if value is None:
                continue
            key_id = self._key_id_for(event, marker)
            key = self._key_for_writing(key_id)
            state[stored_name] = self._seal_tree(value, key_id, key)

    def _key_id_for(self, event: DomainEvent, marker: Sensitive) -> str:
        if marker.key == "deployment":
            return DEPLOYMENT_KEY_ID
        if marker.key == "day":
            return day_key_id(event.timestamp)
        subject = event.data_subject()
        if subject is None:
            msg = f"{type(event).__name__} has personal data but names no data subject"
            raise MissingSubjectKey(msg)
        return subject_key_id(subject)

    def _key_for_writing(self, key_id: str) -> bytes:
        if key_id == DEPLOYMENT_KEY_ID:
            return self._deployment
        if key_id.startswith(DAY_PREFIX):
            return self._keys.create([key_id])[key_id]
        key = self._keys.fetch_many([key_id]).get(key_id)
        if key is None:
            msg = (
                f"no key for data subject {key_id}: it was erased or never created; "
                "create the subject's key before recording personal data"
            )
            raise MissingSubjectKey(msg)
        return key

    def _seal_tree(self, value: Any, key_id: str, key: bytes) -> Any:
        if value is None:
            return None
        if isinstance(value, dict):
            return {k: self._seal_tree(v, key_id, key) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._seal_tree(v, key_id, key) for v in value]
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        plaintext = orjson.dumps(value)
        return f"{key_id}:{to_text(seal(key, plaintext, context=key_id.encode()))}"

    # -- reading

    def key_ids(self, event_type: type[DomainEvent], state: dict[str, Any]) -> set[str]:
        """Every key id that the sealed values in `state` need."""
        found: set[str] = set()
        for _, stored_name, _ in sensitive_fields(event_type):
            _collect_key_ids(state.get(stored_name), found)
        found.discard(DEPLOYMENT_KEY_ID)
        return found

    def prefetch(
        self, key_ids: Iterable[str], *, remember: bool = True
    ) -> dict[str, bytes]:
        """The keys of `key_ids` in one lookup (see `SubjectKeys.fetch_many`)."""
        return dict(self._keys.fetch_many(sorted(key_ids), remember=remember))

    def open(
        self,
        event_type: type[DomainEvent],
        state: dict[str, Any],
        keys: dict[str, bytes],
    ) -> None:
        """Replace envelopes in `state` by their values, in place.

        A value whose key is gone becomes None and the state is marked erased.
        """
        erased = False
        for _, stored_name, _ in sensitive_fields(event_type):
            if stored_name in state:
                state[stored_name], lost = self._open_tree(state[stored_name], keys)
                erased = erased or lost
        if erased:
            state["erased"] = True

    def _open_tree(self, value: Any, keys: dict[str, bytes]) -> tuple[Any, bool]:
        if value is None:
            return None, False
        if isinstance(value, dict):
            opened, lost = {}, False
            for name, item in value.items():
                opened[name], item_lost = self._open_tree(item, keys)
                lost = lost or item_lost
            return opened, lost
        if isinstance(value, list):
            items, lost = [], False
            for item in value:
                opened_item, item_lost = self._open_tree(item, keys)
                items.append(opened_item)
                lost = lost or item_lost
            return items, lost
        if not isinstance(value, str):
            # Inside a sealed field only strings are sealed; flags stay clear.
            return value, False
        return self.open_envelope(value, keys)

    def open_documents(self, documents: list[Any]) -> list[tuple[Any, bool]]:
        """Open several sealed documents with one batched key lookup.

        Each answer is (opened document, whether a value's key was gone).
        """
        key_ids: set[str] = set()
        for document in documents:
            _collect_key_ids(document, key_ids)
        key_ids.discard(DEPLOYMENT_KEY_ID)
        keys = self.prefetch(key_ids) if key_ids else {}
        return [self._open_tree(document, keys) for document in documents]

    def open_envelope(self, envelope: str, keys: dict[str, bytes]) -> tuple[Any, bool]:
        """One sealed value: (value, False), or (None, True) if its key is gone."""
        key_id, _, sealed = envelope.partition(":")
        key = self._deployment if key_id == DEPLOYMENT_KEY_ID else keys.get(key_id)
        if key is None:
            return None, True
        try:
            plaintext = open_sealed(key, from_text(sealed), context=key_id.encode())
        except InvalidTag as error:
            msg = f"a sealed value under key {key_id} fails authentication"
            raise ValueError(msg) from error
        return orjson.loads(plaintext), False


def _collect_key_ids(value: Any, found: set[str]) -> None:
    if isinstance(value, str):
        key_id, separator, _ = value.partition(":")
        if separator:
            found.add(key_id)
    elif isinstance(value, dict):
        for item in value.values():
            _collect_key_ids(item, found)
    elif isinstance(value, list):
        for item in value:
            _collect_key_ids(item, found)
