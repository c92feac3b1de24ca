"""Fixtures for the console tests: one real `headwater serve` on SQLite for
the whole package, one Chromium per module, and ways to sign in."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from tests.conftest import TEST_SECRET_KEY
from tests.support.server import LiveServer, start_server

#: Chromium from the OS packages; `make test` installs it where it is missing.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "console"
INTEGRATION_TYPE = "v5-api-endpoint-unauthenticated"
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass(frozen=True)
class Console:
    """The running service, and an admin API client to arrange state with."""

    server: LiveServer
    api: httpx.Client

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def admin_token(self) -> str:
        token = self.server.admin_token
        assert token is not None
        return token

    def url(self, path: str) -> str:
        return self.base_url + path

    def issue(self, name: str, role: str) -> dict[str, Any]:
        """A new token of `role`, with its secret (`token`) and `id`."""
        answer = self.api.post("/admin/v1/tokens", json={"name": name, "role": role})
        assert answer.status_code == 201, answer.text
        issued: dict[str, Any] = answer.json()
        return issued

    def integration(
        self, name: str, configuration: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A new integration, saved with `configuration` when one is given."""
        answer = self.api.post(
            "/admin/v1/integrations", json={"name": name, "type": INTEGRATION_TYPE}
        )
        assert answer.status_code == 201, answer.text
        created: dict[str, Any] = answer.json()
        if configuration is None:
            return created
        saved = self.api.put(
            f"/admin/v1/integrations/{created['id']}",
            json={"name": name, **configuration},
        )
        assert saved.status_code == 200, saved.text
        result: dict[str, Any] = saved.json()
        return result

    def activate(self, integration_id: str) -> int:
        answer = self.api.post(f"/admin/v1/integrations/{integration_id}/activate")
        assert answer.status_code == 200, answer.text
        position: int = answer.json()["position"]
        return position

    def wait_for_audit(self, position: int) -> None:
        answer = self.api.get(
            "/admin/v1/audit", params={"minPosition": position, "limit": 1}
        )
        assert answer.status_code == 200, answer.text


@pytest.fixture(scope="package")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """A real `headwater serve` on a fresh SQLite store."""
    folder = tmp_path_factory.mktemp("console")
    env = {
        "HEADWATER_DATABASE_URL": f"sqlite:///{folder}/var/headwater.db",
        "HEADWATER_SECRET_KEY": TEST_SECRET_KEY,
    }
    server = start_server(folder, env)
    assert server.admin_token is not None
    api = httpx.Client(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {server.admin_token}"},
        timeout=15,
    )
    try:
        yield Console(server, api)
    finally:
        api.close()
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium from the OS packages; never a downloaded browser."""
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing; `make test` installs it (apt-get)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


def sign_in(page: Page, console: Console, token: str) -> None:
    """Sign in through the form, as a person would."""
    page.goto(console.url("/console"))
    page.get_by_label("Access token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Integrations", exact=True)).to_be_visible()


@pytest.fixture(scope="module")
def admin_page(browser: Browser, console: Console) -> Iterator[Page]:
    """One page, signed in with the admin token, reused by a module's tests."""
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    page = context.new_page()
    sign_in(page, console, console.admin_token)
    try:
        yield page
    finally:
        context.close()


def screenshot(target: Page | Locator, name: str, *, full_page: bool = True) -> None:
    """Save a screenshot for docs/console.md: a page, or a part of one."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = str(SCREENSHOTS / f"{name}.png")
    if isinstance(target, Page):
        target.screenshot(path=path, full_page=full_page)
    else:
        target.screenshot(path=path)


@contextmanager
def signed_in_client(console: Console, token: str) -> Iterator[httpx.Client]:
    """An HTTP client holding a console session opened with `token`."""
    with httpx.Client(base_url=console.base_url, timeout=15) as client:
        form = client.get("/console/sign-in")
        answer = client.post(
            "/console/sign-in",
            data={"csrf": csrf_of(form.text), "token": token, "next": "/console"},
        )
        assert answer.status_code == 303, answer.text
        yield client


def csrf_of(page: str) -> str:
    match = CSRF_FIELD.search(page)
    assert match is not None, "the page holds no CSRF token"
    return match.group(1)
