"""The rate limit per endpoint and client, and how the client's address is
found: the connection's, or `X-Forwarded-For` from a trusted proxy."""

from __future__ import annotations

import ipaddress

import pytest
from starlette.testclient import TestClient

from api.bootstrap import Container
from api.http.ratelimit import RateLimiter, client_address, parse_networks
from domain.submission import SubmissionAccepted
from tests.submissions.conftest import (
    ClientFrom,
    Endpoint,
    MakeEndpoint,
    events_of,
    problem_slug,
)

ANN = [{"profile": {"email": "ann@example.com"}}]
PROXIES = parse_networks(["10.0.0.0/8", "fd00::/8"])


class StoppedClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.seconds = 1000.0

    def __call__(self) -> float:
        return self.seconds


# -- over HTTP


@pytest.mark.settings(rate_limit=3)
def test_the_request_after_the_rate_limit_is_a_429_with_retry_after(
    client: TestClient, endpoint: Endpoint
) -> None:
    for _ in range(3):
        assert client.post(endpoint.production_url, json=ANN).status_code == 200

    answer = client.post(endpoint.production_url, json=ANN)

    assert answer.status_code == 429
    assert problem_slug(answer) == "too-many-requests"
    assert int(answer.headers["retry-after"]) >= 1


@pytest.mark.settings(rate_limit=3)
def test_a_rate_limited_request_is_not_recorded(
    client: TestClient, container: Container, endpoint: Endpoint
) -> None:
    for _ in range(3):
        client.post(endpoint.production_url, json=ANN)
    head = container.events.head()

    client.post(endpoint.production_url, json=ANN)

    assert container.events.head() == head


@pytest.mark.settings(rate_limit=1)
def test_the_rate_limit_counts_each_endpoint_apart(
    client: TestClient, make_endpoint: MakeEndpoint
) -> None:
    first = make_endpoint(allowProfileCreation=True)
    second = make_endpoint(allowProfileCreation=True)
    client.post(first.production_url, json=ANN)

    answer = client.post(second.production_url, json=ANN)

    assert answer.status_code == 200


@pytest.mark.settings(rate_limit=1)
def test_the_rate_limit_counts_each_client_apart(
    client_from: ClientFrom, endpoint: Endpoint
) -> None:
    client_from("198.51.100.1").post(endpoint.production_url, json=ANN)

    answer = client_from("198.51.100.2").post(endpoint.production_url, json=ANN)

    assert answer.status_code == 200


@pytest.mark.settings(rate_limit=1)
def test_a_rate_limited_form_post_is_sent_to_the_error_url(
    client: TestClient, make_endpoint: MakeEndpoint
) -> None:
    endpoint = make_endpoint(
        allowProfileCreation=True, errorRedirectUrl="https://shop.example/oops"
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    client.post(
        endpoint.production_url, content="email=ann%40example.com", headers=headers
    )

    answer = client.post(
        endpoint.production_url,
        content="email=ann%40example.com",
        headers=headers,
        follow_redirects=False,
    )

    assert answer.status_code == 303
    assert answer.headers["location"] == (
        "https://shop.example/oops?error=too-many-requests"
    )


@pytest.mark.settings(rate_limit=1)
def test_the_origin_is_checked_before_the_rate_limit(
    client: TestClient, make_endpoint: MakeEndpoint
) -> None:
    endpoint = make_endpoint(
        allowProfileCreation=True, allowedOrigins=["https://shop.example"]
    )
    client.post(endpoint.production_url, json=ANN)

    answer = client.post(
        endpoint.production_url, json=ANN, headers={"Origin": "https://evil.example"}
    )

    assert answer.status_code == 403
    assert problem_slug(answer) == "origin-not-allowed"


@pytest.mark.settings(rate_limit=1)
def test_the_rate_limit_is_checked_before_captcha(
    client: TestClient, make_endpoint: MakeEndpoint
) -> None:
    endpoint = make_endpoint(
        allowProfileCreation=True,
        requireRecaptcha=True,
        recaptchaSecret="captcha-secret",
    )
    client.post(endpoint.production_url, json=ANN)

    answer = client.post(endpoint.production_url, json=ANN)

    assert answer.status_code == 429


@pytest.mark.settings(rate_limit=0)
def test_a_rate_limit_of_zero_turns_limiting_off(
    client: TestClient, endpoint: Endpoint
) -> None:
    statuses = []

    for _ in range(5):
        statuses.append(client.post(endpoint.test_url, json=ANN).status_code)

    assert statuses == [200] * 5


@pytest.mark.settings(rate_limit=1, trusted_proxies=("10.0.0.0/8",))
def test_forwarded_clients_behind_a_trusted_proxy_are_counted_apart(
    client_from: ClientFrom, endpoint: Endpoint
) -> None:
    proxy = client_from("10.0.0.5")
    proxy.post(
        endpoint.production_url, json=ANN, headers={"X-Forwarded-For": "198.51.100.1"}
    )

    answer = proxy.post(
        endpoint.production_url, json=ANN, headers={"X-Forwarded-For": "198.51.100.2"}
    )

    assert answer.status_code == 200


@pytest.mark.settings(rate_limit=1, trusted_proxies=("10.0.0.0/8",))
def test_a_forwarded_client_behind_a_trusted_proxy_is_limited(
    client_from: ClientFrom, endpoint: Endpoint
) -> None:
    proxy = client_from("10.0.0.5")
    headers = {"X-Forwarded-For": "198.51.100.1"}
    proxy.post(endpoint.production_url, json=ANN, headers=headers)

    answer = proxy.post(endpoint.production_url, json=ANN, headers=headers)

    assert answer.status_code == 429


@pytest.mark.settings(rate_limit=1, trusted_proxies=("10.0.0.0/8",))
def test_x_forwarded_for_from_an_untrusted_client_is_ignored(
    client_from: ClientFrom, endpoint: Endpoint
) -> None:
    stranger = client_from("192.0.2.10")
    stranger.post(
        endpoint.production_url, json=ANN, headers={"X-Forwarded-For": "198.51.100.1"}
    )

    answer = stranger.post(
        endpoint.production_url, json=ANN, headers={"X-Forwarded-For": "198.51.100.2"}
    )

    assert answer.status_code == 429


@pytest.mark.settings(trusted_proxies=("10.0.0.0/8",))
def test_the_client_ip_recorded_is_the_one_a_trusted_proxy_forwarded(
    client_from: ClientFrom, container: Container, endpoint: Endpoint
) -> None:
    proxy = client_from("10.0.0.5")

    proxy.post(
        endpoint.production_url,
        json=ANN,
        headers={"X-Forwarded-For": "198.51.100.1, 10.0.0.7"},
    )

    (accepted,) = events_of(container, SubmissionAccepted)
    assert accepted.request.client_ip == "198.51.100.1"


def test_the_client_ip_recorded_is_the_connections_without_trusted_proxies(
    client_from: ClientFrom, container: Container, endpoint: Endpoint
) -> None:
    browser = client_from("192.0.2.10")

    browser.post(
        endpoint.production_url, json=ANN, headers={"X-Forwarded-For": "198.51.100.1"}
    )

    (accepted,) = events_of(container, SubmissionAccepted)
    assert accepted.request.client_ip == "192.0.2.10"


# -- client_address


def test_without_trusted_proxies_the_connections_address_counts() -> None:
    peer, forwarded = "10.0.0.5", "198.51.100.1"

    address = client_address(peer, forwarded, [])

    assert address == "10.0.0.5"


def test_an_untrusted_peers_forwarded_header_is_ignored() -> None:
    peer, forwarded = "192.0.2.10", "198.51.100.1"

    address = client_address(peer, forwarded, PROXIES)

    assert address == "192.0.2.10"


def test_a_trusted_peers_forwarded_client_counts() -> None:
    peer, forwarded = "10.0.0.5", "198.51.100.1"

    address = client_address(peer, forwarded, PROXIES)

    assert address == "198.51.100.1"


def test_the_nearest_untrusted_hop_counts_not_what_the_client_wrote() -> None:
    peer, forwarded = "10.0.0.5", "6.6.6.6, 198.51.100.1, 10.0.0.7"

    address = client_address(peer, forwarded, PROXIES)

    assert address == "198.51.100.1"


def test_when_every_hop_is_trusted_the_first_counts() -> None:
    peer, forwarded = "10.0.0.5", "10.1.1.1, 10.0.0.7"

    address = client_address(peer, forwarded, PROXIES)

    assert address == "10.1.1.1"


def test_a_forwarded_hop_that_is_not_an_address_falls_back_to_the_peer() -> None:
    peer, forwarded = "10.0.0.5", "unknown, 10.0.0.7"

    address = client_address(peer, forwarded, PROXIES)

    assert address == "10.0.0.5"


def test_a_trusted_peer_without_a_forwarded_header_is_the_client() -> None:
    peer = "10.0.0.5"

    address = client_address(peer, None, PROXIES)

    assert address == "10.0.0.5"


def test_a_peer_that_is_not_an_address_is_never_trusted() -> None:
    peer, forwarded = "testclient", "198.51.100.1"

    address = client_address(peer, forwarded, PROXIES)

    assert address == "testclient"


def test_trusted_ipv6_proxies_are_recognised() -> None:
    peer, forwarded = "fd00::1", "2001:db8::7"

    address = client_address(peer, forwarded, PROXIES)

    assert address == "2001:db8::7"


def test_no_peer_means_no_client_address() -> None:
    forwarded = "198.51.100.1"

    address = client_address(None, forwarded, PROXIES)

    assert address is None


def test_trusted_proxies_may_be_single_addresses_or_networks() -> None:
    values = ["10.0.0.0/8", "192.0.2.1"]

    networks = parse_networks(values)

    assert networks == [
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.0.2.1/32"),
    ]


# -- RateLimiter


def test_the_limiter_allows_the_limit_then_says_how_long_to_wait() -> None:
    clock = StoppedClock()
    limiter = RateLimiter(3, clock=clock)
    allowed = [limiter.take("endpoint", "client") for _ in range(3)]

    wait = limiter.take("endpoint", "client")

    assert allowed == [None, None, None]
    assert wait == pytest.approx(20.0)


def test_the_limiter_refills_as_time_passes() -> None:
    clock = StoppedClock()
    limiter = RateLimiter(3, clock=clock)
    for _ in range(3):
        limiter.take("endpoint", "client")
    clock.seconds += 20

    wait = limiter.take("endpoint", "client")

    assert wait is None


def test_the_limiter_keeps_a_bucket_per_endpoint_and_client() -> None:
    limiter = RateLimiter(1, clock=StoppedClock())
    limiter.take("endpoint", "client")

    others = [limiter.take("endpoint", "other"), limiter.take("other", "client")]

    assert others == [None, None]


def test_a_limit_of_zero_never_refuses() -> None:
    limiter = RateLimiter(0, clock=StoppedClock())

    waits = [limiter.take("endpoint", "client") for _ in range(100)]

    assert waits == [None] * 100


@pytest.mark.parametrize(
    ("seconds", "header"), [(0.01, "1"), (1.0, "1"), (1.2, "2"), (59.5, "60")]
)
def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one(
    seconds: float, header: str
) -> None:
    value = RateLimiter.retry_after(seconds)

    assert value == header
