"""Drive the real Dagster processes a person runs after ``make demo``: the demo itself, the
webserver (``make dev``'s UI), the daemon, and headless Chromium on the UI's pages."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx

from acs_khaos_dagster_tests.chromium import FLAGS, TIMEOUT_S, chromium

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def demo_environment(folder: Path) -> dict[str, str]:
    """A data folder and a Dagster instance of the demo's own under ``folder``, as
    ``make demo`` lays them (``data/`` and ``data/dagster_home`` with the repo's yaml)."""
    home = folder / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACS_KHAOS_")}
    return env | {
        "DAGSTER_HOME": str(home),
        "ACS_KHAOS_DATA_DIR": str(folder / "data"),
        "ACS_KHAOS_ACS__DROP_FOLDER": str(folder / "data" / "acs_drop"),
    }


def run_demo(env: dict[str, str]) -> str:
    """``acs-khaos demo`` on the tiny scenario (seed 7), as its own process; its output."""
    result = subprocess.run(
        [sys.executable, "-m", "acs_khaos_dagster.cli", "demo", "--size", "tiny", "--seed", "7"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def dagster_process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A Dagster command in its own process group (it starts a code server of its own),
    stopped with that whole group afterwards."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield process
        finally:
            for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
                if process.poll() is not None:
                    break
                os.killpg(process.pid, sig)
                try:
                    process.wait(timeout=wait)
                except subprocess.TimeoutExpired:
                    continue


@contextmanager
def webserver(env: dict[str, str], log: Path) -> Iterator[str]:
    """What ``make dev`` serves (its recipe: test_report_files.py): ``acs-khaos webserver
    --local`` on ``workspace.yaml``, on a free loopback port; yields its base URL once its
    code location has loaded."""
    url = f"http://127.0.0.1:{(port := free_port())}"
    args = [str(BIN / "acs-khaos"), "webserver", "--local", "-w", str(ROOT / "workspace.yaml")]
    with dagster_process([*args, "-h", "127.0.0.1", "-p", str(port)], env, log) as process:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()[-3000:]
            try:
                states = graphql(url, LOCATIONS)["workspaceOrError"]["locationEntries"]
                if states and all(s["loadStatus"] == "LOADED" for s in states):
                    break
            except httpx.TransportError:
                pass
            time.sleep(1)
        else:
            raise AssertionError(f"the webserver did not load in time:\n{log.read_text()[-3000:]}")
        yield url


LOCATIONS = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"


def graphql(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = httpx.post(
        f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60
    )
    answer.raise_for_status()
    body = answer.json()
    assert "errors" not in body, json.dumps(body["errors"])[:2000]
    return body["data"]


# Chromium may reach the webserver on loopback and nothing else.
LOOPBACK_ONLY = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
BROWSER_FLAGS = [f for f in FLAGS if not f.startswith("--host-resolver-rules")] + [LOOPBACK_ONLY]
# The UI is a single-page app: let it run its queries (virtual time) before capturing.
PAGE_TIME_MS = 20_000


def _browse(args: list[str], url: str, profile: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [
            chromium(),
            *BROWSER_FLAGS,
            f"--user-data-dir={profile}",
            "--window-size=1600,1000",
            f"--virtual-time-budget={PAGE_TIME_MS}",
            "--enable-logging=stderr",
            "--v=0",
            *args,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S * 3,
        check=False,
    )
    assert result.returncode == 0, f"chromium failed ({result.returncode}): {result.stderr[-2000:]}"
    return result


class PageView:
    """What a person sees of a UI page: its visible text and the browser console's errors."""

    def __init__(self, html: str, console: str) -> None:
        self.text = _VisibleText(html).text
        self.console_errors = [
            line for line in console.splitlines() if "CONSOLE" in line and "Uncaught" in line
        ]


def view(url: str, profile: Path) -> PageView:
    result = _browse(["--dump-dom"], url, profile)
    return PageView(result.stdout, result.stderr)


def screenshot(url: str, png: Path, profile: Path) -> None:
    _browse([f"--screenshot={png}"], url, profile)
    assert png.exists(), "chromium wrote no screenshot"


class _VisibleText(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__()
        self._hidden = 0
        self._parts: list[str] = []
        self.feed(html)
        self.text = " | ".join(self._parts)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._hidden += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden and data.strip():
            self._parts.append(data.strip())
