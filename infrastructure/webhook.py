"""The webhook channel: a signed POST of each delivery's JSON body.

The signature header is `Headwater-Signature: t=<unix time>,v1=<hex>`, where
each `v1` is HMAC-SHA256 over `"<t>.<body>"` keyed with the UTF-8 bytes of a
signing secret. During a rotation several secrets are configured and one
`v1` is sent for each, so receivers that know either secret accept it.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import httpx

logger = logging.getLogger(__name__)

SIGNATURE_HEADER: Final = "Headwater-Signature"
TIMEOUT: Final = httpx.Timeout(10.0, connect=5.0)


def signature(body: bytes, secrets: Sequence[str], *, at: int) -> str:
    """The `Headwater-Signature` value for `body` signed at unix time `at`."""
    signed = f"{at}.".encode() + body
    parts = [f"t={at}"]
    for secret in secrets:
        digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        parts.append(f"v1={digest}")
    return ",".join(parts)


@dataclass(frozen=True)
class Outcome:
    """What the receiver answered (or why it could not be reached)."""

    status_code: int | None
    retry_after: float | None = None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def permanent(self) -> bool:
        """A refusal that retrying cannot change (most 4xx)."""
        code = self.status_code
        return code is not None and 400 <= code < 500 and code not in (408, 425, 429)

    def describe(self) -> str:
        if self.status_code is not None:
            return f"HTTP {self.status_code}"
        return self.error or "no answer"


class WebhookChannel:
    """Sends delivery bodies to one URL."""

    def __init__(
        self, url: str, secrets: Sequence[str], client: httpx.Client | None = None
    ) -> None:
        self._url = url
        self._secrets = [secret for secret in secrets if secret]
        # An unsigned delivery cannot be told from a forged one.
        if not self._secrets:
            msg = (
                "the delivery webhook has no signing secret (blank or only "
                "commas); set HEADWATER_DELIVERY_SIGNING_SECRET"
            )
            raise ValueError(msg)
        self._client = client or httpx.Client(timeout=TIMEOUT)

    def send(self, body: bytes, *, delivery_id: str) -> Outcome:
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(body, self._secrets, at=int(time.time())),
            "Headwater-Delivery-Id": delivery_id,
            "User-Agent": "Headwater-Delivery/1",
        }
        try:
            response = self._client.post(self._url, content=body, headers=headers)
        except httpx.TimeoutException:
            return Outcome(None, error="timed out")
        except httpx.HTTPError as error:
            return Outcome(None, error=f"could not connect: {type(error).__name__}")
        return Outcome(
            response.status_code,
            retry_after=_retry_after(response.headers.get("retry-after")),
        )

    def close(self) -> None:
        self._client.close()


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number, or an HTTP date."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())
