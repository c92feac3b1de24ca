"""Verifying CAPTCHA tokens with the reCAPTCHA siteverify protocol.

The same protocol serves Google reCAPTCHA, Cloudflare Turnstile and hCaptcha:
a form POST of `secret`, `response` and `remoteip`, answered with JSON
`{success, score?, ...}`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

import httpx

from application.ports import CaptchaUnavailable

logger = logging.getLogger(__name__)

TIMEOUT: Final = httpx.Timeout(5.0, connect=3.0)


@dataclass(frozen=True)
class Verdict:
    success: bool
    score: float | None = None


class SiteverifyClient:
    """The `CaptchaVerifier` port over HTTP."""

    def __init__(self, url: str, client: httpx.AsyncClient | None = None) -> None:
        self._url = url
        self._client = client or httpx.AsyncClient(timeout=TIMEOUT)

    async def verify(
        self, *, secret: str, token: str, client_ip: str | None
    ) -> Verdict:
        form = {"secret": secret, "response": token}
        if client_ip:
            form["remoteip"] = client_ip
        try:
            response = await self._client.post(self._url, data=form)
        except httpx.HTTPError as error:
            raise CaptchaUnavailable(
                f"the CAPTCHA verifier failed: {type(error).__name__}"
            ) from error
        if response.status_code != 200:
            msg = f"the CAPTCHA verifier answered {response.status_code}"
            raise CaptchaUnavailable(msg)
        try:
            body = response.json()
        except ValueError as error:
            raise CaptchaUnavailable("the CAPTCHA verifier answered no JSON") from error
        if not isinstance(body, dict) or not isinstance(body.get("success"), bool):
            raise CaptchaUnavailable(
                "the CAPTCHA verifier's answer has no success field"
            )
        score = body.get("score")
        return Verdict(
            success=body["success"],
            score=float(score) if isinstance(score, int | float) else None,
        )

    async def close(self) -> None:
        await self._client.aclose()
