"""The `Headwater-Signature` header (CONTRACT 3.2, docs/delivery.md): a unix
time and one HMAC-SHA256 of `"<t>.<body>"` per signing secret, which a
receiver following the documented procedure accepts, and which fails for
anything but the body that was sent.

Signing does not depend on the store, so these tests run on SQLite only.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from pathlib import Path
from typing import Final

import pytest

from api.settings import Settings
from tests.delivery.conftest import SECRET, Json, Service
from tests.support.receiver import Received, Receiver, verify

HEADER: Final = re.compile(r"^t=(\d+)(?:,v1=[0-9a-f]{64})+$")
NEW_SECRET: Final = "whsec-new-ÄÖÜ-0123456789"
OLD_SECRET: Final = "whsec-old-0123456789"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/var/headwater.db"


def delivered(service: Service, endpoint: Json, receiver: Receiver) -> Received:
    service.trigger(endpoint, "ann@example.com", request_content={"order": 7})
    (request,) = receiver.wait_for(1)
    return request


def v1_values(header: str) -> list[str]:
    return [part[3:] for part in header.split(",") if part.startswith("v1=")]


def hmac_hex(secret: str, stamp: str, body: bytes) -> str:
    signed = stamp.encode() + b"." + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


@pytest.mark.usefixtures("started")
def test_the_signature_is_a_recent_unix_time_and_the_hmac_of_time_and_body(
    service: Service, endpoint: Json, receiver: Receiver
) -> None:
    request = delivered(service, endpoint, receiver)

    match = HEADER.match(request.signature)

    assert match is not None, request.signature
    stamp = match.group(1)
    assert abs(time.time() - int(stamp)) < 30
    assert v1_values(request.signature) == [hmac_hex(SECRET, stamp, request.body)]


@pytest.mark.usefixtures("started")
def test_a_receiver_following_the_documented_procedure_accepts_a_delivery(
    service: Service, endpoint: Json, receiver: Receiver
) -> None:
    request = delivered(service, endpoint, receiver)

    accepted = verify(request.signature, request.body, [SECRET])

    assert accepted


@pytest.mark.usefixtures("started")
def test_a_tampered_body_fails_the_documented_verification(
    service: Service, endpoint: Json, receiver: Receiver
) -> None:
    request = delivered(service, endpoint, receiver)
    tampered = request.body.replace(b"ann@example.com", b"eve@example.com")

    accepted = verify(request.signature, tampered, [SECRET])

    assert tampered != request.body
    assert not accepted


@pytest.mark.usefixtures("started")
def test_a_receiver_with_another_secret_refuses_a_delivery(
    service: Service, endpoint: Json, receiver: Receiver
) -> None:
    request = delivered(service, endpoint, receiver)

    accepted = verify(request.signature, request.body, ["not-the-secret"])

    assert not accepted


class TestDuringARotation:
    """Two comma-separated secrets: new first, old second."""

    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(
            update={"delivery_signing_secret": f"{NEW_SECRET},{OLD_SECRET}"}
        )

    @pytest.mark.usefixtures("started")
    def test_there_is_one_v1_value_for_each_secret(
        self, service: Service, endpoint: Json, receiver: Receiver
    ) -> None:
        request = delivered(service, endpoint, receiver)

        stamp = request.signature.split(",")[0].removeprefix("t=")

        assert v1_values(request.signature) == [
            hmac_hex(NEW_SECRET, stamp, request.body),
            hmac_hex(OLD_SECRET, stamp, request.body),
        ]

    @pytest.mark.parametrize("secret", [NEW_SECRET, OLD_SECRET])
    @pytest.mark.usefixtures("started")
    def test_a_receiver_that_knows_either_secret_accepts_a_delivery(
        self, service: Service, endpoint: Json, receiver: Receiver, secret: str
    ) -> None:
        request = delivered(service, endpoint, receiver)

        accepted = verify(request.signature, request.body, [secret])

        assert accepted
