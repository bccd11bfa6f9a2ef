"""The Dagster webserver as production runs it: behind the proxy, each UI action attributed.

Dagster's open-source webserver has no login, and runs a GraphQL mutation sent as a GET,
a form POST or a ``text/plain`` POST (it reads the query from the URL when the body is
not JSON). The authenticating proxy (``deploy/nginx.conf``) refuses those and foreign
origins; this wrapper serves the very same Dagster app (``acs-khaos webserver``) with a
guard of its own in front of ``/graphql``, so that the rule holds even for a request
that reaches the webserver some other way:

- GraphQL over GET is refused (the GraphiQL page itself, a GET without a query, is not);
- a POST must be ``application/json`` (the only type a cross-site form cannot send);
- a **mutation** (launch, re-execute, terminate, delete a run, start or stop a sensor or
  schedule, wipe assets …) is recorded in the integration's audit log *before* it
  reaches Dagster, with the user the proxy signed in (``X-Forwarded-User`` or
  ``Remote-User``) as the actor. One without a user is refused, and so is one that
  cannot be recorded: an action nobody can be held to does not run.

The proxy sets those headers itself, overwriting anything a client sends, and the
webserver listens on a Unix socket only the proxy's group can reach (deploy/README.md),
so the header cannot be forged from outside. ``make dev`` runs it with ``--local``: on
loopback, with no proxy, each action recorded as the local user's.

It also serves the report folders of the data folder read-only at ``/files/``
(``report_files``): the links the finance assets put in their metadata open from the UI.
"""

from __future__ import annotations

import getpass
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import anyio
from graphql import GraphQLError, OperationDefinitionNode, OperationType, parse

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

USER_HEADERS = (b"x-forwarded-user", b"remote-user")
LOOPBACK = ("127.0.0.1", "::1", "localhost")
ACTION_PREFIX = "dagster_ui:"
MAX_BODY = 10 * 1024 * 1024
# Variables that name what a mutation acts on, most specific first.
SUBJECT_KEYS = (
    "jobName",
    "pipelineName",
    "sensorName",
    "scheduleName",
    "partitionSetName",
    "runId",
    "backfillId",
)


@dataclass(frozen=True)
class UiAction:
    """One mutation sent from the Dagster UI, as the audit log records it."""

    actor: str
    operation: str
    fields: tuple[str, ...]
    subject: str
    origin: str | None = None


Recorder = Callable[[UiAction], None]


def store_recorder() -> Recorder:
    """Record UI actions in the integration's audit log (the store named by the settings)."""
    from acs_khaos_dagster.config import load_settings
    from acs_khaos_dagster.store import Store

    store = Store.from_settings(load_settings())

    def record(action: UiAction) -> None:
        store.audit.record_action(
            actor=action.actor,
            action=(ACTION_PREFIX + ",".join(action.fields))[:60],
            subject=action.subject[:300],
            note=json.dumps(
                {"operation": action.operation, "fields": action.fields, "origin": action.origin}
            ),
            outcome="requested",
        )

    return record


def mutation_fields(body: dict[str, Any]) -> tuple[str, ...] | None:
    """The top-level fields of the operation ``body`` runs if it is a mutation, else None.

    A document that does not parse is left to Dagster, which answers with the error.
    """
    query = body.get("query")
    if not isinstance(query, str):
        return None
    try:
        document = parse(query)
    except GraphQLError:
        return None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    wanted = body.get("operationName")
    if wanted:
        operations = [o for o in operations if o.name is not None and o.name.value == wanted]
    elif len(operations) != 1:
        return None
    if not operations or operations[0].operation != OperationType.MUTATION:
        return None
    selections = operations[0].selection_set.selections
    return tuple(s.name.value for s in selections if hasattr(s, "name")) or ("mutation",)


def _subject(variables: object, fallback: str) -> str:
    found: dict[str, str] = {}

    def walk(value: object) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key in SUBJECT_KEYS and isinstance(item, str | int):
                    found.setdefault(key, str(item))
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(variables)
    for key in SUBJECT_KEYS:
        if key in found:
            return f"{key}={found[key]}"
    return fallback


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _is_json(content_type: str | None) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() == "application/json"


class UiGuard:
    """ASGI middleware in front of Dagster's ``/graphql`` (see the module docstring)."""

    def __init__(
        self,
        app: AsgiApp,
        recorder: Recorder,
        *,
        require_user: bool = True,
        local_user: str | None = None,
    ) -> None:
        self.app = app
        self.recorder = recorder
        self.require_user = require_user
        # ``make dev`` on loopback has no proxy: its actions are the local user's.
        self.local_user = local_user

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].rstrip("/").endswith("/graphql"):
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method in ("GET", "HEAD"):
            if "query" in parse_qs(scope.get("query_string", b"").decode("latin-1")):
                await _refuse(send, 405, "GraphQL over GET is refused: POST application/json")
                return
            await self.app(scope, receive, send)
            return
        if method != "POST":
            await self.app(scope, receive, send)
            return
        if not _is_json(_header(scope, b"content-type")):
            await _refuse(send, 415, "GraphQL requests must be POST application/json")
            return
        body = await _read_body(receive)
        if body is None:
            await _refuse(send, 413, "request body too large")
            return
        refusal = await self._check_and_record(scope, body)
        if refusal is not None:
            await _refuse(send, *refusal)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _check_and_record(self, scope: Scope, body: bytes) -> tuple[int, str] | None:
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None  # Dagster answers a malformed body itself
        if not isinstance(data, dict):
            return None
        fields = mutation_fields(data)
        if fields is None:
            return None
        actor = next(
            (value.strip() for h in USER_HEADERS if (value := _header(scope, h)) and value.strip()),
            self.local_user,
        )
        if actor is None and self.require_user:
            return 403, "a UI action needs the signed-in user: reach the UI through the proxy"
        operation = str(data.get("operationName") or fields[0])
        action = UiAction(
            actor=actor or "unknown",
            operation=operation,
            fields=fields,
            subject=_subject(data.get("variables"), operation),
            origin=_header(scope, b"origin"),
        )
        try:
            await anyio.to_thread.run_sync(self.recorder, action)
        except Exception:
            # Not turned into silence: logged in full, and the action does not run.
            log.exception("could not record UI action %s by %s", operation, action.actor)
            return 503, "the action could not be recorded in the audit log, so it was not run"
        return None


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body already read, then the real stream."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _refuse(send: Send, status: int, reason: str) -> None:
    body = json.dumps({"refused_by": "acs-khaos webserver guard", "reason": reason}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def serve(
    workspace: Path,
    *,
    uds: Path | None = None,
    host: str = "127.0.0.1",
    port: int = 3000,
    path_prefix: str = "",
    recorder: Recorder | None = None,
    local: bool = False,
) -> None:
    """Serve Dagster's own app (``dagster-webserver``'s) behind ``UiGuard`` until stopped,
    with the report folders at ``/files/`` (``report_files``).

    ``local`` (``make dev``): no proxy in front, so UI actions are recorded as the local
    user's; only on a loopback address, never on a socket a proxy serves.
    """
    import uvicorn
    from dagster import DagsterInstance
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget
    from dagster_webserver.app import create_app_from_workspace_process_context
    from dagster_webserver.version import __version__

    from acs_khaos_dagster.config import load_settings
    from acs_khaos_dagster.report_files import ReportFiles

    if local and (uds is not None or host not in LOOPBACK):
        raise ValueError("a local webserver (no proxy) listens on loopback only")
    local_user = f"local:{getpass.getuser()}" if local else None
    guard_recorder = recorder or store_recorder()
    data_dir = load_settings().data_dir
    with (
        DagsterInstance.get() as instance,
        WorkspaceProcessContext(
            instance,
            WorkspaceFileTarget(paths=[str(workspace)]),
            version=__version__,
        ) as context,
    ):
        # As dagster-webserver does: statement timeout 15 s, pool recycle 1 h, overflow 20.
        instance.optimize_for_webserver(15000, 3600, 20)
        app = create_app_from_workspace_process_context(context, path_prefix)
        files = ReportFiles(app, data_dir, path_prefix=path_prefix)
        guarded = UiGuard(files, guard_recorder, local_user=local_user)
        if uds is not None:
            if uds.exists():
                uds.unlink()  # left by a previous run; uvicorn cannot bind over it
            uvicorn.run(guarded, uds=str(uds), log_level="warning")
        else:
            uvicorn.run(guarded, host=host, port=port, log_level="warning")
