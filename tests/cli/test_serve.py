"""`headwater serve` (CONTRACT 5): the start-up announcement, the first admin
token, concurrent starts on one fresh store, and several workers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.cli.conftest import Store
from tests.support.server import TOKEN_LINE, LiveServer


def printed_tokens(server: LiveServer) -> list[str]:
    return [line for line in server.output if TOKEN_LINE.match(line)]


def test_the_first_start_prints_the_address_it_listens_on(
    served_store: tuple[Store, LiveServer],
) -> None:
    _, server = served_store

    first_line = server.output[0]

    assert f"listening on {server.base_url} " in first_line


def test_the_first_start_prints_one_admin_token(
    served_store: tuple[Store, LiveServer],
) -> None:
    _, server = served_store

    tokens = printed_tokens(server)

    assert len(tokens) == 1
    assert server.admin_token is not None


def test_the_printed_token_is_an_admin_token_that_works_at_once(
    served_store: tuple[Store, LiveServer],
) -> None:
    _, server = served_store
    headers = {"Authorization": f"Bearer {server.admin_token}"}

    # Only the admin role may list tokens.
    answer = httpx.get(f"{server.base_url}/admin/v1/tokens", headers=headers)

    assert answer.status_code == 200


def test_a_second_start_on_the_same_store_prints_no_token(store: Store) -> None:
    store.start().stop()

    second = store.start()
    second.stop()

    assert second.admin_token is None
    assert printed_tokens(second) == []
    assert len(store.tokens()) == 1


def test_two_servers_started_at_once_on_a_fresh_store_create_one_admin_token(
    store: Store,
) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        starting = [pool.submit(store.start) for _ in range(2)]
    servers = [future.result() for future in starting if future.exception() is None]
    for server in servers:
        server.stop()

    assert len(servers) == 2, [future.exception() for future in starting]
    tokens = store.tokens()
    assert [(t.name, t.role.value) for t in tokens] == [("first admin", "admin")]
    assert sum(len(printed_tokens(server)) for server in servers) == 1


def test_serve_with_two_workers_answers_requests(store: Store) -> None:
    server = store.start("--workers", "2")

    try:
        headers = {"Authorization": f"Bearer {server.admin_token}"}
        answers = [
            httpx.get(f"{server.base_url}/admin/v1/integrations", headers=headers)
            for _ in range(4)
        ]
    finally:
        server.stop()

    assert [answer.status_code for answer in answers] == [200] * 4
