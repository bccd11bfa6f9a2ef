"""The integration's "now" (``clock.py``): the system clock unless ``clock_url`` names a
file or a loopback HTTP clock (the sandbox's simulated time), always an aware UTC moment;
a clock that gives a time without a zone is refused rather than guessed."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from acs_khaos_dagster.clock import clock_for, integration_now, read_clock
from acs_khaos_dagster.config import Settings, load_settings


def file_clock(tmp_path: Path, text: str) -> str:
    path = tmp_path / "now.txt"
    path.write_text(text + "\n")
    return path.as_uri()


@pytest.fixture
def http_clock() -> Iterator[str]:
    """A loopback clock answering ``{"now": "2026-06-10T09:30:00+01:00"}``."""

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"now": "2026-06-10T09:30:00+01:00"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/now"
    finally:
        server.shutdown()
        server.server_close()


def settings_with(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str | None) -> Settings:
    monkeypatch.setenv("ACS_KHAOS_DATA_DIR", str(tmp_path / "data"))
    if url is None:
        monkeypatch.delenv("ACS_KHAOS_CLOCK_URL", raising=False)
    else:
        monkeypatch.setenv("ACS_KHAOS_CLOCK_URL", url)
    return load_settings()


def test_a_file_clock_gives_its_time_in_utc(tmp_path: Path) -> None:
    url = file_clock(tmp_path, "2026-06-10T09:30:00+01:00")
    now = read_clock(url)
    assert now == datetime(2026, 6, 10, 8, 30, tzinfo=UTC)
    assert now.utcoffset() == timedelta(0)


def test_a_clock_time_without_a_zone_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="without a zone"):
        read_clock(file_clock(tmp_path, "2026-06-10T09:30:00"))


def test_an_http_clock_gives_its_time_in_utc(http_clock: str) -> None:
    assert read_clock(http_clock) == datetime(2026, 6, 10, 8, 30, tzinfo=UTC)


def test_without_a_clock_url_now_is_the_system_clock(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conf = settings_with(monkeypatch, tmp_path, None)
    before = datetime.now(UTC)
    now = integration_now(conf)
    assert before <= now <= datetime.now(UTC)
    assert before <= clock_for(conf)() <= datetime.now(UTC)


def test_with_a_clock_url_now_and_the_stores_clock_follow_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = file_clock(tmp_path, "2026-06-10T09:30:00Z")
    conf = settings_with(monkeypatch, tmp_path, url)
    clock = clock_for(conf)
    assert integration_now(conf) == clock() == datetime(2026, 6, 10, 9, 30, tzinfo=UTC)
    file_clock(tmp_path, "2026-06-11T00:00:00Z")  # simulated time moved on
    assert clock() == datetime(2026, 6, 11, tzinfo=UTC)
