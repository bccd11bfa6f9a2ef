"""Each brand's alerts reach its own routes alone (deploy/README.md "Several brands": alert
routes are a brand's own).

Two brands in one brands folder, each with its own store and its own Slack webhook for the
operations team (two paths on one loopback receiver, which records what reaches each). Each
brand's ``exception_alerts`` sensor ticks in a process of its own with the brand's
environment, as in the brand's code location.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from acs_khaos_dagster.brands import brand_environment, brand_environment_values
from acs_khaos_dagster.store import Store

BRANDS = ("acme", "bravo")
TICK = """
from dagster import DagsterInstance, build_sensor_context
from acs_khaos_dagster.definitions import defs
sensor = defs.resolve_sensor_def("exception_alerts")
with DagsterInstance.ephemeral() as instance, build_sensor_context(
    instance=instance, resources=defs.resources, repository_def=defs.get_repository_def()
) as context:
    print(sensor.evaluate_tick(context).skip_message)
"""


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """A webhook receiver on loopback: its base URL, and each post's (path, body)."""
    posts: list[tuple[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            posts.append((self.path, self.rfile.read(length).decode()))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", posts
    finally:
        server.shutdown()
        server.server_close()


def _brand(folder: Path, code: str, webhook: str) -> Path:
    folder.mkdir(exist_ok=True)
    file = folder / f"{code}.yaml"
    file.write_text(f"brand: {code}\ndata_dir: {folder.parent / code}\n", encoding="utf-8")
    env = file.with_suffix(".env")
    env.write_text(
        f"ACS_KHAOS_ALERTS__OPERATIONS__SLACK_WEBHOOK_URL={webhook}\n"
        f"ACS_KHAOS_ALERTS__INTEGRATION__SLACK_WEBHOOK_URL={webhook}-integration\n",
        encoding="utf-8",
    )
    for path in (file, env):
        path.chmod(0o600)
    return file


def _tick(file: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACS_KHAOS_")}
    env.update(brand_environment_values(file))  # what the brand's code server's unit gives it
    done = subprocess.run(
        [sys.executable, "-c", TICK], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_each_brands_exception_alert_reaches_its_own_route_and_never_the_others(
    tmp_path: Path, receiver: tuple[str, list[tuple[str, str]]]
) -> None:
    base, posts = receiver
    routes = {code: f"/{code}-ops-{secrets.token_hex(6)}" for code in BRANDS}
    files = {code: _brand(tmp_path / "brands", code, base + routes[code]) for code in BRANDS}
    for code, file in files.items():
        with brand_environment(file) as settings, Store.from_settings(settings) as store:
            ref = f"{code.upper()}-ORDER-{secrets.token_hex(3)}"
            store.exceptions.raise_exception("order_locked", ref, f"{ref} needs a person")
    refs = {code: code.upper() + "-ORDER-" for code in BRANDS}

    for code in BRANDS:
        _tick(files[code])

    by_route: dict[str, list[str]] = {}
    for path, body in posts:
        by_route.setdefault(path, []).append(json.dumps(json.loads(body)))
    assert set(by_route) == set(routes.values())  # each brand's route, and no other
    for code, other in (("acme", "bravo"), ("bravo", "acme")):
        heard = " ".join(by_route[routes[code]])
        assert refs[code] in heard and refs[other] not in heard, code
        # A channel shared by brands still tells them apart: each alert names its brand.
        assert f"[{code}] " in heard and f"[{other}] " not in heard, code
