"""The webserver's own guard in front of Dagster's /graphql, without the proxy.

Defence in depth for point 1 and the actor of point 4: whatever reaches the webserver,
GraphQL over GET and non-JSON POSTs are refused, and a mutation runs only once it is in
the audit log with the signed-in user. A stand-in app plays Dagster, so the test shows
what reaches it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from acs_khaos_dagster.store import Store
from acs_khaos_dagster.webserver import UiAction, UiGuard, mutation_fields

pytestmark = pytest.mark.anyio

LAUNCH = {
    "operationName": "LaunchPipelineExecution",
    "query": "mutation LaunchPipelineExecution($executionParams: ExecutionParams!) "
    "{ launchPipelineExecution(executionParams: $executionParams) { __typename } }",
    "variables": {"executionParams": {"selector": {"jobName": "integration_cycle"}}},
}


class Dagster:
    """Stands in for Dagster's app: answers 200 and remembers what reached it."""

    def __init__(self) -> None:
        self.received: list[bytes] = []

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        body = b""
        if scope["type"] == "http" and scope["method"] == "POST":
            message = await receive()
            body = message.get("body", b"")
        self.received.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b'{"data":{}}'})


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'store.sqlite'}") as opened:
        yield opened


def _recorder(store: Store):  # type: ignore[no-untyped-def]
    def record(action: UiAction) -> None:
        store.audit.record_action(
            actor=action.actor,
            action=f"dagster_ui:{','.join(action.fields)}",
            subject=action.subject,
        )

    return record


def _client(app) -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dagster")


async def test_a_mutation_is_recorded_with_the_signed_in_user_before_it_runs(store: Store) -> None:
    dagster = Dagster()
    async with _client(UiGuard(dagster, _recorder(store))) as client:
        answer = await client.post("/graphql", json=LAUNCH, headers={"X-Forwarded-User": "alice"})

    assert answer.status_code == 200
    assert json.loads(dagster.received[0]) == LAUNCH  # the body reaches Dagster unchanged
    (entry,) = store.audit.list(category="human_action")
    assert (entry.actor, entry.action, entry.subject) == (
        "alice",
        "dagster_ui:launchPipelineExecution",
        "jobName=integration_cycle",
    )


async def test_a_query_runs_without_being_recorded(store: Store) -> None:
    dagster = Dagster()
    async with _client(UiGuard(dagster, _recorder(store))) as client:
        answer = await client.post("/graphql", json={"query": "{ version }"})

    assert answer.status_code == 200 and len(dagster.received) == 1
    assert store.audit.list() == []


@pytest.mark.parametrize(
    ("method", "url", "headers", "body", "status"),
    [
        ("GET", "/graphql?query=mutation%20%7B%20setNuxSeen%20%7D", {}, None, 405),
        ("POST", "/graphql", {"Content-Type": "text/plain"}, json.dumps(LAUNCH), 415),
        (
            "POST",
            "/graphql?query=mutation%20%7B%20setNuxSeen%20%7D",
            {"Content-Type": "application/x-www-form-urlencoded"},
            "a=1",
            415,
        ),
        ("POST", "/graphql", {"Content-Type": "text/plain; a=application/json"}, "{}", 415),
    ],
)
async def test_graphql_that_is_not_a_json_post_never_reaches_dagster(
    store: Store, method: str, url: str, headers: dict[str, str], body: str | None, status: int
) -> None:
    dagster = Dagster()
    async with _client(UiGuard(dagster, _recorder(store))) as client:
        answer = await client.request(
            method, url, headers={"X-Forwarded-User": "alice", **headers}, content=body
        )

    assert answer.status_code == status
    assert dagster.received == []


async def test_a_mutation_without_a_signed_in_user_is_refused(store: Store) -> None:
    dagster = Dagster()
    async with _client(UiGuard(dagster, _recorder(store))) as client:
        answer = await client.post("/graphql", json=LAUNCH)

    assert answer.status_code == 403
    assert dagster.received == [] and store.audit.list() == []


async def test_a_mutation_that_cannot_be_recorded_does_not_run(store: Store) -> None:
    def broken(action: UiAction) -> None:
        raise OSError("the audit database is down")

    dagster = Dagster()
    async with _client(UiGuard(dagster, broken)) as client:
        answer = await client.post("/graphql", json=LAUNCH, headers={"Remote-User": "alice"})

    assert answer.status_code == 503
    assert dagster.received == []


async def test_the_graphiql_page_and_other_paths_pass_untouched(store: Store) -> None:
    dagster = Dagster()
    async with _client(UiGuard(dagster, _recorder(store))) as client:
        assert (await client.get("/graphql", headers={"Accept": "text/html"})).status_code == 200
        assert (await client.get("/runs")).status_code == 200
    assert len(dagster.received) == 2


def test_mutations_are_told_from_queries_whatever_the_document_holds() -> None:
    assert mutation_fields({"query": "mutation { a b }"}) == ("a", "b")
    assert mutation_fields({"query": "query Q { a }"}) is None
    two = "query Q { a } mutation M { wipeAssets(assetPartitionRanges: []) { __typename } }"
    assert mutation_fields({"query": two, "operationName": "M"}) == ("wipeAssets",)
    assert mutation_fields({"query": two, "operationName": "Q"}) is None
    assert mutation_fields({"query": "not graphql {"}) is None
