"""A web form or script posting to the public endpoints, without a token."""

from __future__ import annotations

from typing import Any

import httpx2
from starlette.testclient import TestClient

Json = dict[str, Any]


class Public:
    """A web form or script: posts to the public endpoints, without a token."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def submit(
        self,
        integration: Json,
        body: Any,
        *,
        test: bool = False,
        headers: dict[str, str] | None = None,
    ) -> httpx2.Response:
        prefix = "/v5/test/endpoints" if test else "/v5/endpoints"
        return self.client.post(
            f"{prefix}/{integration['endpointId']}", json=body, headers=headers
        )

    def accepted(
        self,
        integration: Json,
        body: Any,
        *,
        test: bool = False,
        headers: dict[str, str] | None = None,
    ) -> Json:
        """The answer to a submission that must be accepted."""
        answer = self.submit(integration, body, test=test, headers=headers)
        assert answer.status_code == 200, answer.text
        accepted: Json = answer.json()
        return accepted
