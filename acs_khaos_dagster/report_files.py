"""The reports finance and ecommerce open from the Dagster UI, served read-only at ``/files/``.

A browser refuses a ``file://`` link from a page served over http, and a bare path is
text to copy. So the webserver (``acs-khaos webserver``, which ``make dev`` and production
both run) serves the report folders of the data folder under ``/files/<path in the data
folder>``, and the assets put that relative URL in their metadata (``report_url``); the UI
renders it as a link that opens on the same origin, behind the same proxy login.

Only these are served (``SERVED_DIRS``, ``SERVED_FILES``); everything else in the data
folder (the store, ACS's files, snapshots, the SKU master) answers 404, as does:

- any path with an empty, ``.``, ``..`` or hidden (``.``-prefixed) segment, a backslash
  or a NUL, however it was encoded;
- a symlink anywhere below the data folder (a link out of a report folder, or a report
  folder that is itself a link), checked on every segment and again when the file is
  opened (``O_NOFOLLOW``);
- anything that is not a regular file or a folder.

A folder answers with a plain list of its reports (the pack's CSVs), never of anything
outside the served folders. Responses carry ``Content-Security-Policy: sandbox`` (a
report page can run no script on the UI's origin), ``nosniff`` and ``no-store``; only
GET and HEAD are answered.
"""

from __future__ import annotations

import html
import mimetypes
import os
import stat
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import anyio

from acs_khaos_dagster.brands import (
    brand_codes,
    brand_data_dir,
    brand_file,
    brands_dir,
    brands_dir_named,
    demo_brands_dir,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ROUTE = "/files/"
# Under the data folder: the month-end packs (finals and previews), the workflow audit
# reports, the brand's overview (the team's), and ecommerce's list of SKUs not ready for sale.
SERVED_DIRS = ("month_end", "audit", "overview")
SERVED_FILES = ("products/not_ready_for_sale.csv",)
SHOWN_INLINE = {".html", ".htm", ".txt"}
HEADERS = [
    (b"content-security-policy", b"sandbox; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
]


def report_url(data_dir: Path, path: Path, brand: str | None = None) -> str | None:
    """The ``/files/...`` URL of ``path`` (a report under ``data_dir``), or None when it
    is not in a served folder (the caller keeps the path as text only). A brand's link
    starts with its code: the one webserver of a deployment finds that brand's data folder
    in the brand's settings file (``brand_data_dirs``)."""
    try:
        relative = Path(os.path.abspath(path)).relative_to(os.path.abspath(data_dir))
    except ValueError:
        return None
    rel = relative.as_posix()
    if _served_parts(rel) is None:
        return None
    return ROUTE + quote(f"{brand}/{rel}" if brand else rel)


def brand_data_dirs(data_dir: Path) -> dict[str, Path]:
    """Each brand's data folder, from the brands folder its settings files are in (the one
    named, else the demo's under ``data_dir``): only the brands configured there are served,
    each from its own ``data_dir`` (default ``data/<code>``). No secrets are read."""
    folder = brands_dir() if brands_dir_named() else demo_brands_dir(data_dir)
    if not folder.is_dir():
        return {}
    found = {}
    for code in brand_codes(folder):
        configured = brand_data_dir(brand_file(code, folder))
        found[code] = configured if configured is not None else Path("data") / code
    return found


def _served_parts(rel: str) -> tuple[str, ...] | None:
    """The segments of ``rel`` if it names a served file or something in a served folder."""
    parts = tuple(rel.split("/"))
    if any(not p or p.startswith(".") or "\\" in p or "\x00" in p for p in parts):
        return None
    if "/".join(parts) in SERVED_FILES or parts[0] in SERVED_DIRS:
        return parts
    return None


def served_path(data_dir: Path, rel: str, brands: Mapping[str, Path] | None = None) -> Path | None:
    """The file or folder ``/files/<rel>`` names, or None if it must not be served:
    ``<rel>`` in ``data_dir``, or ``<code>/<rel>`` in brand ``code``'s data folder."""
    first, _, rest = rel.partition("/")
    if brands and first in brands and first not in SERVED_DIRS:
        data_dir, rel = brands[first], rest
    parts = _served_parts(rel)
    if parts is None:
        return None
    root = Path(os.path.abspath(data_dir))
    current = root
    for part in parts:
        current = current / part
        try:
            mode = current.lstat().st_mode
        except OSError:
            return None
        if stat.S_ISLNK(mode):
            return None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return None
    # Belt and braces: the resolved path is still inside its served folder.
    base = root / (parts[0] if parts[0] in SERVED_DIRS else PurePosixPath(*parts))
    if not current.resolve().is_relative_to(base.resolve()):
        return None
    return current


def _read_regular(path: Path) -> bytes | None:
    """The bytes of ``path`` if it is still a regular file, opened without following a link."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return None
        return handle.read()


def listing(folder: Path, url: str) -> bytes:
    """A plain HTML list of the reports in ``folder`` (no links, no hidden entries)."""
    rows = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(".") or entry.is_symlink():
            continue
        name = entry.name + ("/" if entry.is_dir() else "")
        if entry.is_dir() or entry.is_file():
            href = html.escape(url.rstrip("/") + "/" + quote(name), quote=True)
            rows.append(f'<li><a href="{href}">{html.escape(name)}</a></li>')
    title = html.escape(url)
    return (
        f"<!doctype html><meta charset='utf-8'><title>{title}</title>"
        f"<h1>{title}</h1><ul>{''.join(rows) or '<li>(empty)</li>'}</ul>"
    ).encode()


class ReportFiles:
    """ASGI middleware: ``/files/...`` from the data folder's report folders, the rest to
    ``app`` (Dagster). ``data_dir`` is the integration's data folder (its settings)."""

    def __init__(self, app: AsgiApp, data_dir: Path, *, path_prefix: str = "") -> None:
        self.app = app
        self.data_dir = data_dir
        self.routes = tuple({ROUTE, path_prefix.rstrip("/") + ROUTE})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        route = next((r for r in self.routes if path.startswith(r)), None)
        if route is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _answer(send, 405, b"read only", "text/plain", extra=[(b"allow", b"GET, HEAD")])
            return
        rel = path[len(route) :]
        brands = await anyio.to_thread.run_sync(brand_data_dirs, self.data_dir)
        found = served_path(self.data_dir, rel.rstrip("/"), brands)
        if found is None:
            await _answer(send, 404, b"not found", "text/plain")
            return
        if found.is_dir():
            body = await anyio.to_thread.run_sync(listing, found, ROUTE + quote(rel))
            await _answer(send, 200, body, "text/html; charset=utf-8", head=_is_head(scope))
            return
        data = await anyio.to_thread.run_sync(_read_regular, found)
        if data is None:
            await _answer(send, 404, b"not found", "text/plain")
            return
        kind = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
        if kind.startswith("text/"):
            kind += "; charset=utf-8"
        shown = "inline" if found.suffix.lower() in SHOWN_INLINE else "attachment"
        disposition = f"{shown}; filename*=UTF-8''{quote(found.name)}"
        extra = [(b"content-disposition", disposition.encode("latin-1"))]
        await _answer(send, 200, data, kind, extra=extra, head=_is_head(scope))


def _is_head(scope: Scope) -> bool:
    return scope["method"] == "HEAD"


async def _answer(
    send: Send,
    status: int,
    body: bytes,
    content_type: str,
    *,
    extra: list[tuple[bytes, bytes]] | None = None,
    head: bool = False,
) -> None:
    headers = [
        (b"content-type", content_type.encode("latin-1")),
        (b"content-length", str(len(body)).encode()),
        *HEADERS,
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})
