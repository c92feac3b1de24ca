"""The console's session, CSRF and role checks, over HTTP against a real
`headwater serve`: what a browser would send, and what an attacker might."""

from __future__ import annotations

import base64
import json

import httpx

from tests.console.conftest import INTEGRATION_TYPE, Console, csrf_of, signed_in_client


def session_cookie_header(console: Console) -> str:
    """The Set-Cookie header that opens a session for the admin token."""
    client = httpx.Client(base_url=console.base_url)
    with client:
        form = client.get("/console/sign-in")
        answer = client.post(
            "/console/sign-in",
            data={"csrf": csrf_of(form.text), "token": console.admin_token},
        )
    return next(
        header
        for header in answer.headers.get_list("set-cookie")
        if header.startswith("headwater_console=")
    )


def cookie_value(header: str) -> str:
    return header.split(";", 1)[0].split("=", 1)[1]


def test_the_session_cookie_is_http_only_same_site_strict_and_sent_only_to_the_console(
    console: Console,
) -> None:
    header = session_cookie_header(console)

    attributes = {part.strip().lower() for part in header.split(";")[1:]}

    assert "httponly" in attributes
    assert "samesite=strict" in attributes
    assert "path=/console" in attributes
    assert "max-age=28800" in attributes
    # Served over plain HTTP here; over HTTPS it is Secure (see the in-process
    # tests).
    assert "secure" not in attributes


def test_the_session_cookie_holds_the_token_id_and_an_expiry_never_the_token(
    console: Console,
) -> None:
    value = cookie_value(session_cookie_header(console))

    payload, _, signature = value.partition(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))

    assert console.admin_token not in value
    assert set(claims) == {"exp", "kind", "nonce", "tokenId"}
    assert claims["kind"] == "session"
    assert signature


def test_the_admin_api_refuses_the_console_cookie(console: Console) -> None:
    value = cookie_value(session_cookie_header(console))

    answer = httpx.get(
        console.url("/admin/v1/integrations"),
        headers={"Cookie": f"headwater_console={value}"},
    )

    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
    console: Console,
) -> None:
    before = len(console.api.get("/admin/v1/integrations").json()["items"])

    with signed_in_client(console, console.admin_token) as client:
        answer = client.post(
            "/console/integrations",
            data={"name": "Forged", "type": INTEGRATION_TYPE},
        )

    assert answer.status_code == 403
    after = console.api.get("/admin/v1/integrations").json()["items"]
    assert len(after) == before
    assert "Forged" not in {item["name"] for item in after}


def test_a_post_with_another_sessions_csrf_token_is_refused(console: Console) -> None:
    with signed_in_client(console, console.admin_token) as other:
        stolen = csrf_of(other.get("/console").text)

    with signed_in_client(console, console.admin_token) as client:
        answer = client.post(
            "/console/integrations",
            data={"csrf": stolen, "name": "Forged", "type": INTEGRATION_TYPE},
        )

    assert answer.status_code == 403


def test_a_json_post_is_refused_because_it_cannot_carry_the_csrf_token(
    console: Console,
) -> None:
    with signed_in_client(console, console.admin_token) as client:
        answer = client.post(
            "/console/integrations",
            json={"name": "Forged", "type": INTEGRATION_TYPE},
        )

    assert answer.status_code == 403


def test_a_sign_in_without_its_csrf_token_is_refused_and_opens_no_session(
    console: Console,
) -> None:
    answer = httpx.post(
        console.url("/console/sign-in"), data={"token": console.admin_token}
    )

    assert answer.status_code == 403
    assert not any(
        header.startswith("headwater_console=")
        for header in answer.headers.get_list("set-cookie")
    )


def test_a_wrong_token_is_refused_with_401_and_opens_no_session(
    console: Console,
) -> None:
    with httpx.Client(base_url=console.base_url) as client:
        form = client.get("/console/sign-in")
        answer = client.post(
            "/console/sign-in",
            data={"csrf": csrf_of(form.text), "token": "hw_" + "x" * 43},
        )

    assert answer.status_code == 401
    assert "was not accepted" in answer.text
    assert "headwater_console" not in client.cookies


def test_signing_in_never_sends_the_browser_to_another_site(console: Console) -> None:
    with httpx.Client(base_url=console.base_url) as client:
        form = client.get("/console/sign-in")
        answer = client.post(
            "/console/sign-in",
            data={
                "csrf": csrf_of(form.text),
                "token": console.admin_token,
                "next": "//evil.example/console",
            },
        )

    assert answer.status_code == 303
    assert answer.headers["location"] == "/console"


def test_a_tampered_session_cookie_is_sent_back_to_sign_in(console: Console) -> None:
    value = cookie_value(session_cookie_header(console))
    payload, _, signature = value.partition(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["exp"] += 3600
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode()

    answer = httpx.get(
        console.url("/console"),
        headers={"Cookie": f"headwater_console={forged.rstrip('=')}.{signature}"},
    )

    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/console/sign-in")


def test_revoking_the_token_ends_its_console_session_at_once(console: Console) -> None:
    issued = console.issue("revoked soon", "analyst")
    with signed_in_client(console, issued["token"]) as client:
        assert client.get("/console").status_code == 200

        revoked = console.api.delete(f"/admin/v1/tokens/{issued['id']}")
        answer = client.get("/console")

    assert revoked.status_code == 200
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/console/sign-in")


def test_an_analyst_is_refused_activating_an_integration_even_with_a_valid_form(
    console: Console,
) -> None:
    created = console.integration("Not for analysts", {})
    issued = console.issue("analyst", "analyst")

    with signed_in_client(console, issued["token"]) as client:
        editor = client.get(f"/console/integrations/{created['id']}")
        answer = client.post(
            f"/console/integrations/{created['id']}/activate",
            data={"csrf": csrf_of(editor.text)},
        )

    assert editor.status_code == 200
    assert answer.status_code == 403
    current = console.api.get(f"/admin/v1/integrations/{created['id']}").json()
    assert current["status"] == "inactive"


def test_an_integration_manager_is_refused_the_audit_page_and_its_csv(
    console: Console,
) -> None:
    issued = console.issue("manager", "integration-manager")

    with signed_in_client(console, issued["token"]) as client:
        page = client.get("/console/audit")
        export = client.get("/console/audit.csv")
        home = client.get("/console")

    assert (page.status_code, export.status_code) == (403, 403)
    assert 'href="/console/audit"' not in home.text


def test_console_pages_may_not_be_framed_or_cached(console: Console) -> None:
    with signed_in_client(console, console.admin_token) as client:
        answer = client.get("/console")

    assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
    assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["X-Frame-Options"] == "DENY"


def test_the_console_escapes_what_it_shows(console: Console) -> None:
    name = '<script>alert("owned")</script>'
    console.integration(name)

    with signed_in_client(console, console.admin_token) as client:
        page = client.get("/console").text

    assert name not in page
    assert "&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt;" in page


def test_the_editor_never_shows_the_captcha_secret(console: Console) -> None:
    secret = "captcha-secret-that-must-never-show"
    created = console.integration(
        "Secretive", {"requireRecaptcha": True, "recaptchaSecret": secret}
    )

    with signed_in_client(console, console.admin_token) as client:
        page = client.get(f"/console/integrations/{created['id']}").text

    assert secret not in page
    assert "A secret is set" in page


def test_saving_with_the_secret_left_empty_keeps_it(console: Console) -> None:
    created = console.integration(
        "Keeps its secret", {"requireRecaptcha": True, "recaptchaSecret": "kept"}
    )
    url = f"/console/integrations/{created['id']}"

    with signed_in_client(console, console.admin_token) as client:
        editor = client.get(url)
        answer = client.post(
            url,
            data={
                "csrf": csrf_of(editor.text),
                "version": str(created["version"]),
                "name": "Keeps its secret",
                "identifyBy": "email",
                "requireRecaptcha": "on",
                "recaptchaSecret": "",
                "recaptchaMinScore": "0.7",
                "allowedOrigins": "*",
                "fieldValidationRules": "{}",
            },
        )

    saved = console.api.get(f"/admin/v1/integrations/{created['id']}").json()
    assert answer.status_code == 303, answer.text
    assert saved["recaptchaSecretSet"] is True
    assert saved["recaptchaMinScore"] == 0.7


def test_an_unknown_console_page_answers_with_the_consoles_404_page(
    console: Console,
) -> None:
    with signed_in_client(console, console.admin_token) as client:
        answer = client.get("/console/no-such-page")

    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert "No console page is here" in answer.text


def test_a_csrf_token_that_is_not_ascii_is_refused_like_any_wrong_one(
    console: Console,
) -> None:
    with signed_in_client(console, console.admin_token) as client:
        answer = client.post(
            "/console/integrations",
            data={"csrf": "é" * 43, "name": "Forged", "type": INTEGRATION_TYPE},
        )

    assert answer.status_code == 403


def test_creating_an_integration_without_a_name_shows_the_error_in_the_dialog(
    console: Console,
) -> None:
    with signed_in_client(console, console.admin_token) as client:
        page = client.get("/console")
        answer = client.post(
            "/console/integrations",
            data={"csrf": csrf_of(page.text), "name": " ", "type": INTEGRATION_TYPE},
        )

    assert answer.status_code == 422
    assert '<dialog id="new-integration"' in answer.text
    assert 'id="name-error"' in answer.text
    assert "open data-modal" in answer.text
