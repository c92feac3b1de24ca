"""The console in a real Chromium against a real `headwater serve`: signing in
and out, the integration lifecycle, spec files, Try it, the audit trail, the
subscriber lookup, the status page, roles, keyboard use and narrow windows.

Each test arranges what it needs through the admin API, so that the tests do
not depend on one another; the signed-in page is shared by the module.
"""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate
from playwright.sync_api import Browser, BrowserContext, Page, expect

from api.http.reading import CSV_COLUMNS
from tests.console.conftest import Console, screenshot, sign_in

GREEN = "rgb(30, 123, 52)"
YELLOW = "rgb(245, 197, 24)"
OPEN_CONFIGURATION = {"allowProfileCreation": True, "allowProfileUpdates": True}


@pytest.fixture
def fresh_context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    try:
        yield context
    finally:
        context.close()


def open_editor(page: Page, console: Console, integration_id: str) -> None:
    page.goto(console.url(f"/console/integrations/{integration_id}"))
    expect(page.get_by_role("heading", name="Configuration")).to_be_visible()


def background_of(page: Page, selector: str) -> str:
    colour: str = page.eval_on_selector(
        selector, "element => getComputedStyle(element).backgroundColor"
    )
    return colour


# -- signing in and out


def test_signing_in_with_an_access_token_opens_the_integrations_page(
    fresh_context: BrowserContext, console: Console
) -> None:
    page = fresh_context.new_page()
    page.goto(console.url("/console"))
    expect(page).to_have_url(console.url("/console/sign-in?next=%2Fconsole"))
    screenshot(page, "sign-in")

    page.get_by_label("Access token").fill(console.admin_token)
    page.get_by_role("button", name="Sign in").click()

    expect(page).to_have_url(console.url("/console"))
    expect(page.get_by_role("heading", name="Integrations", exact=True)).to_be_visible()
    expect(page.get_by_text("first admin")).to_be_visible()


def test_a_wrong_token_is_refused_at_sign_in(
    fresh_context: BrowserContext, console: Console
) -> None:
    page = fresh_context.new_page()
    page.goto(console.url("/console/sign-in"))

    page.get_by_label("Access token").fill("hw_not-a-token-anyone-was-given")
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("alert")).to_contain_text("was not accepted")
    expect(page.get_by_label("Access token")).to_have_attribute("aria-invalid", "true")
    page.goto(console.url("/console"))
    expect(page).to_have_url(console.url("/console/sign-in?next=%2Fconsole"))


def test_signing_out_ends_the_session_and_the_console_asks_to_sign_in_again(
    fresh_context: BrowserContext, console: Console
) -> None:
    page = fresh_context.new_page()
    sign_in(page, console, console.admin_token)

    page.get_by_role("button", name="Sign out").click()

    expect(page.locator(".flash")).to_have_text("You are signed out.")
    assert [
        c for c in fresh_context.cookies() if c["name"] == "headwater_console"
    ] == []
    page.goto(console.url("/console/audit"))
    expect(page).to_have_url(console.url("/console/sign-in?next=%2Fconsole%2Faudit"))


# -- integrations


def test_an_integration_is_created_refused_activation_saved_activated_and_shown_green(
    admin_page: Page, console: Console
) -> None:
    page = admin_page
    name = f"Newsletter sign-up {uuid.uuid4().hex[:6]}"
    console.integration("Order confirmations", {"allowProfileUpdates": True})

    # Create, through the New Integration dialog.
    page.goto(console.url("/console"))
    page.get_by_role("link", name="New Integration").click()
    dialog = page.get_by_role("dialog", name="New Integration")
    expect(dialog).to_be_visible()
    assert page.eval_on_selector("#new-integration", "d => d.matches(':modal')")
    dialog.get_by_label("Name").fill(name)
    dialog.get_by_label("Type").select_option("v5-api-endpoint-unauthenticated")
    dialog.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name=name)).to_be_visible()

    # Activate is disabled before the first save, and the server refuses too.
    activate = page.get_by_role("button", name="Activate", exact=True)
    expect(activate).to_be_disabled()
    activate.evaluate("button => { button.disabled = false; }")
    activate.click()
    expect(page.locator("#general-errors")).to_contain_text(
        "save its configuration before activating it"
    )

    # Save with mistakes: each error shows next to its field.
    page.get_by_label("Rules (JSON)").fill('{"postcode": {"pattern": "("}}')
    page.get_by_label("Require CAPTCHA verification on every submission").check()
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#fieldValidationRules-error")).to_contain_text(
        "postcode.pattern"
    )
    expect(page.locator("#recaptchaSecret-error")).to_contain_text("requireRecaptcha")
    expect(page.get_by_label("Rules (JSON)")).to_have_attribute("aria-invalid", "true")
    # The two fields with errors, in one window's height.
    page.get_by_role("group", name="CAPTCHA", exact=True).evaluate(
        "fieldset => fieldset.scrollIntoView()"
    )
    screenshot(page, "editor-errors", full_page=False)

    # Correct them and save: Activate becomes available.
    page.get_by_label("Rules (JSON)").fill('{"firstname": {"maxLength": 50}}')
    page.get_by_label("Require CAPTCHA verification on every submission").uncheck()
    page.get_by_label("Create new profiles").check()
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator(".flash")).to_have_text("Changes saved.")
    expect(activate).to_be_enabled()

    # An unsaved edit disables Activate again until it is saved.
    page.get_by_label("Import source name").fill("website")
    expect(activate).to_be_disabled()
    expect(page.locator("#unsaved-note")).to_be_visible()
    page.reload()

    activate.click()
    expect(page.locator("#status")).to_have_attribute("data-status", "active")
    expect(page.get_by_role("button", name="Deactivate")).to_be_enabled()

    page.get_by_role("link", name="Integrations", exact=True).first.click()
    card = page.locator(".card", has=page.get_by_role("link", name=name))
    expect(card).to_have_attribute("data-status", "active")
    assert background_of(page, '.card[data-status="active"] .badge') == GREEN
    assert background_of(page, '.card[data-status="inactive"] .badge') == YELLOW
    screenshot(page, "integrations")


def test_the_new_integration_dialog_opens_and_closes_with_the_keyboard(
    admin_page: Page, console: Console
) -> None:
    page = admin_page
    page.goto(console.url("/console"))

    page.get_by_role("link", name="New Integration").focus()
    page.keyboard.press("Enter")

    dialog = page.get_by_role("dialog", name="New Integration")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Name")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()


def test_the_new_integration_dialog_works_as_a_plain_form_without_script(
    browser: Browser, console: Console
) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        sign_in(page, console, console.admin_token)

        page.get_by_role("link", name="New Integration").click()
        expect(page).to_have_url(console.url("/console/integrations/new"))
        page.get_by_label("Name").fill("Made without script")
        page.get_by_role("button", name="Create").click()

        expect(page.get_by_role("heading", name="Made without script")).to_be_visible()
        expect(page.get_by_label("Production URL", exact=True)).to_have_attribute(
            "readonly", ""
        )
        expect(
            page.get_by_role("button", name="Copy the production URL")
        ).to_be_hidden()
    finally:
        context.close()


def test_the_copy_button_puts_the_endpoint_url_on_the_clipboard(
    admin_page: Page, console: Console
) -> None:
    created = console.integration("Copied", {})
    admin_page.context.grant_permissions(
        ["clipboard-read", "clipboard-write"], origin=console.base_url
    )
    open_editor(admin_page, console, created["id"])

    admin_page.get_by_role("button", name="Copy the production URL").click()

    expect(
        admin_page.get_by_role("button", name="Copy the production URL")
    ).to_have_text("Copied")
    copied = admin_page.evaluate("navigator.clipboard.readText()")
    assert copied == created["productionUrl"]


def test_both_spec_files_download_as_valid_openapi_documents(
    admin_page: Page, console: Console
) -> None:
    created = console.integration("Spec files", {"requireRecaptcha": False})
    open_editor(admin_page, console, created["id"])
    documents = {}

    for mode in ("Test", "Production"):
        with admin_page.expect_download() as download:
            admin_page.get_by_role("link", name=f"{mode} OpenAPI Spec File").click()
        path = download.value.path()
        documents[mode] = json.loads(Path(path).read_text())
        assert download.value.suggested_filename.endswith(".openapi.json")

    for document in documents.values():
        validate(document)
    assert documents["Test"]["servers"][0]["url"] == console.url("/v5/test")
    assert documents["Production"]["servers"][0]["url"] == console.url("/v5")


def test_try_it_records_a_test_submission_and_shows_the_detailed_answer(
    admin_page: Page, console: Console
) -> None:
    created = console.integration("Try it", OPEN_CONFIGURATION)
    open_editor(admin_page, console, created["id"])
    body = admin_page.get_by_label("Submission (JSON)")
    example = json.loads(body.input_value())
    assert example == [{"profile": {"email": "ann@example.com", "firstname": "Ann"}}]

    body.fill('[{"profile": {"email": "try-it@example.com", "firstname": "Tia"}}]')
    admin_page.get_by_role("button", name="Send test submission").click()

    answer = admin_page.locator("#try-answer")
    expect(answer).to_contain_text("HTTP 200 OK")
    expect(answer).to_contain_text('"description": "would create profile"')
    expect(answer).to_contain_text('"mode": "test"')
    screenshot(admin_page.locator("#try"), "try-it")
    recorded = json.loads(answer.locator("code").inner_text())
    audit = console.api.get(
        "/admin/v1/audit",
        params={
            "integrationId": created["id"],
            "action": "SubmissionTested",
            "minPosition": recorded["position"],
        },
    ).json()
    assert [e["submissionId"] for e in audit["items"]] == [recorded["submissionId"]]


def test_try_it_shows_the_validation_problems_of_a_test_submission(
    admin_page: Page, console: Console
) -> None:
    created = console.integration("Try it badly", OPEN_CONFIGURATION)
    open_editor(admin_page, console, created["id"])

    admin_page.get_by_label("Submission (JSON)").fill('{"profile": {"firstname": "x"}}')
    admin_page.get_by_role("button", name="Send test submission").click()

    answer = admin_page.locator("#try-answer")
    expect(answer).to_contain_text("HTTP 422 Unprocessable")
    expect(answer).to_contain_text('"field": "email"')


# -- audit, subscribers, status


def test_the_audit_page_finds_the_activation_and_exports_it_as_csv(
    admin_page: Page, console: Console
) -> None:
    created = console.integration("Audited", OPEN_CONFIGURATION)
    console.wait_for_audit(console.activate(created["id"]))
    page = admin_page
    page.goto(console.url("/console/audit"))

    page.get_by_label("Integration id").fill(created["id"])
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("tbody tr")
    expect(rows.first).to_have_attribute("data-action", "IntegrationActivated")
    expect(page.locator('tr[data-action="IntegrationSaved"]')).to_have_count(1)
    screenshot(page, "audit")
    page.get_by_label("Action").fill("IntegrationActivated")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)

    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    lines = list(csv.reader(io.StringIO(Path(download.value.path()).read_text())))

    assert tuple(lines[0]) == CSV_COLUMNS
    assert [(line[3], line[6]) for line in lines[1:]] == [
        ("IntegrationActivated", created["id"])
    ]


def test_the_audit_page_pages_with_its_cursor(
    admin_page: Page, console: Console
) -> None:
    created = console.integration("Paged", OPEN_CONFIGURATION)
    console.wait_for_audit(console.activate(created["id"]))
    page = admin_page
    page.goto(console.url(f"/console/audit?integrationId={created['id']}&limit=2"))
    first_page = page.locator("tbody tr").evaluate_all(
        "rows => rows.map(row => row.dataset.action)"
    )

    page.get_by_role("link", name="Older entries").click()

    second_page = page.locator("tbody tr").evaluate_all(
        "rows => rows.map(row => row.dataset.action)"
    )
    assert first_page == ["IntegrationActivated", "IntegrationSaved"]
    assert "IntegrationCreated" in second_page
    expect(page.get_by_label("Integration id")).to_have_value(created["id"])
    page.get_by_role("link", name="Newest entries").click()
    expect(page.locator("tbody tr").first).to_have_attribute(
        "data-action", "IntegrationActivated"
    )


def test_the_subscriber_page_finds_a_profile_and_shows_it_as_it_was(
    admin_page: Page, console: Console
) -> None:
    created = console.integration("Profiles", OPEN_CONFIGURATION)
    console.activate(created["id"])
    email = f"ann.{uuid.uuid4().hex[:6]}@example.com"
    first = httpx.post(
        created["productionUrl"], json={"profile": {"email": email, "firstname": "Ann"}}
    )
    assert first.status_code == 200
    time.sleep(1.1)
    # datetime-local keeps whole seconds: a second after the first change.
    between = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    time.sleep(1.1)
    second = httpx.post(
        created["productionUrl"],
        json={"profile": {"email": email, "firstname": "Annie"}},
    )
    console.api.get(
        "/admin/v1/subscribers",
        params={"email": email, "minPosition": second.json()["position"]},
    )
    page = admin_page
    page.goto(console.url("/console/subscribers"))

    page.get_by_label("Find by").select_option("email")
    page.get_by_label("Value").fill(email)
    page.get_by_role("button", name="Find").click()
    expect(page.get_by_role("heading", name=email)).to_be_visible()
    firstname = page.locator("tr", has=page.get_by_role("rowheader", name="firstname"))
    expect(firstname.locator("td").first).to_have_text("Annie")
    page.get_by_label("As of (UTC)").fill(between)
    page.get_by_role("button", name="Show").click()

    expect(page.locator('td[data-as-of="firstname"]')).to_have_text("Ann")
    expect(firstname.locator("td").first).to_have_text("Annie")
    expect(page.locator(".history li")).not_to_have_count(0)
    screenshot(page, "subscriber")


def test_the_status_page_shows_projections_and_delivery_status(
    admin_page: Page, console: Console
) -> None:
    page = admin_page
    page.goto(console.url("/console/status"))

    for name in ("integrations", "subscribers", "dedupe", "audit", "deliveries"):
        expect(page.locator(f'tr[data-projection="{name}"]')).to_have_count(1)
    expect(page.locator("#channel")).to_contain_text("none configured")
    expect(page.locator('[data-delivery-status="pending"] dd')).to_have_text("0")
    screenshot(page, "status")
    page.get_by_role("button", name="Rebuild dedupe from position zero").click()

    expect(page.locator(".flash")).to_contain_text("Rebuild requested")


# -- roles


def test_an_integration_manager_sees_no_audit_link_and_is_refused_the_audit_page(
    fresh_context: BrowserContext, console: Console
) -> None:
    issued = console.issue("manager", "integration-manager")
    page = fresh_context.new_page()
    sign_in(page, console, issued["token"])

    navigation = page.get_by_role("navigation", name="Console")
    expect(navigation.get_by_role("link", name="Integrations")).to_be_visible()
    expect(navigation.get_by_role("link", name="Audit")).to_have_count(0)
    expect(navigation.get_by_role("link", name="Subscribers")).to_have_count(0)
    expect(page.get_by_role("link", name="New Integration")).to_be_visible()
    response = page.goto(console.url("/console/audit"))

    assert response is not None
    assert response.status == 403
    expect(page.get_by_role("heading", name="403 Forbidden")).to_be_visible()


def test_an_auditor_sees_an_integration_without_a_save_button(
    fresh_context: BrowserContext, console: Console
) -> None:
    created = console.integration("Read only", OPEN_CONFIGURATION)
    issued = console.issue("auditor", "auditor")
    page = fresh_context.new_page()
    sign_in(page, console, issued["token"])
    expect(page.get_by_role("link", name="New Integration")).to_have_count(0)

    open_editor(page, console, created["id"])

    expect(page.get_by_role("button", name="Save changes")).to_have_count(0)
    expect(page.get_by_role("button", name="Activate", exact=True)).to_have_count(0)
    expect(page.get_by_label("Name", exact=True)).to_be_disabled()
    expect(page.get_by_label("CAPTCHA secret key")).to_have_count(0)
    expect(page.get_by_role("link", name="Audit")).to_be_visible()


# -- accessibility and narrow windows


def every_control_is_labelled(page: Page) -> list[str]:
    """The ids or names of visible form controls without a label."""
    unlabelled: list[str] = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
            .filter(c => c.type !== 'hidden' && c.labels.length === 0)
            .map(c => c.id || c.name)"""
    )
    return unlabelled


def test_every_control_on_every_page_has_a_label(
    admin_page: Page, console: Console
) -> None:
    created = console.integration("Labelled", OPEN_CONFIGURATION)
    pages = [
        "/console",
        f"/console/integrations/{created['id']}",
        "/console/audit",
        "/console/subscribers",
        "/console/status",
    ]
    unlabelled = {}

    for path in pages:
        admin_page.goto(console.url(path))
        unlabelled[path] = every_control_is_labelled(admin_page)

    assert unlabelled == {path: [] for path in pages}


def test_the_pages_fit_a_narrow_window(browser: Browser, console: Console) -> None:
    created = console.integration("Narrow", OPEN_CONFIGURATION)
    context = browser.new_context(viewport={"width": 360, "height": 740})
    overflowing = {}
    try:
        page = context.new_page()
        sign_in(page, console, console.admin_token)
        for path in (
            "/console",
            f"/console/integrations/{created['id']}",
            "/console/audit",
            "/console/subscribers",
            "/console/status",
        ):
            page.goto(console.url(path))
            overflowing[path] = page.evaluate(
                "document.documentElement.scrollWidth"
                " > document.documentElement.clientWidth"
            )
    finally:
        context.close()

    assert not any(overflowing.values()), overflowing
