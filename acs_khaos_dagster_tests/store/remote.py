"""Fake target systems for outbox tests.

``ScriptedHandler`` lives in memory and fails as scripted. ``FileRemote`` records every
send as a line in a file (opened with O_APPEND, one short write per send), so the count of
sends survives a killed process; it is also a script run as a subprocess worker:

    python remote.py URL SENDS_FILE enqueue|drain|drain-at START_EPOCH [N]
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any


class ScriptedHandler:
    """Raises the scripted errors in order, then succeeds. ``applied`` is the remote state."""

    def __init__(self, *errors: BaseException, read_back_errors: tuple = ()) -> None:
        self.errors = deque(errors)
        self.read_back_errors = deque(read_back_errors)
        self.sends: list[dict[str, Any]] = []
        self.read_backs = 0
        self.applied: dict[str, dict[str, Any]] = {}
        self.apply_before_error = False

    def send(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.sends.append(payload)
        if self.errors:
            error = self.errors.popleft()
            if self.apply_before_error:
                self.applied[payload["ref"]] = {"remote_id": f"R-{payload['ref']}"}
            raise error
        result = {"remote_id": f"R-{payload['ref']}"}
        self.applied[payload["ref"]] = result
        return result

    def read_back(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        self.read_backs += 1
        if self.read_back_errors:
            raise self.read_back_errors.popleft()
        return self.applied.get(payload["ref"])


class FileRemote:
    def __init__(self, path: Path | str, delay_s: float = 0.0) -> None:
        self.path = Path(path)
        self.delay_s = delay_s

    def lines(self) -> list[str]:
        if not self.path.exists():
            return []
        return [line for line in self.path.read_text().splitlines() if line]

    def send(self, payload: dict[str, Any]) -> dict[str, Any]:
        if self.delay_s:
            time.sleep(self.delay_s)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{payload['ref']} {os.getpid()}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        return {"remote_id": f"R-{payload['ref']}"}

    def read_back(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        refs = {line.split()[0] for line in self.lines()}
        return {"remote_id": f"R-{payload['ref']}"} if payload["ref"] in refs else None


def main(argv: list[str]) -> int:
    from acs_khaos_dagster.config import OutboxSettings
    from acs_khaos_dagster.store import Store

    url, sends, command = argv[:3]
    store = Store.open(url)
    remote = FileRemote(sends, delay_s=0.002 if command == "drain-at" else 0.0)
    settings = OutboxSettings(backoff_initial_s=0, max_attempts=5, claim_batch=10)
    if command == "enqueue":
        for i in range(int(argv[3]) if len(argv) > 3 else 1):
            store.outbox.enqueue("post", "khaos", f"SO{i}", f"post:SO{i}", {"ref": f"SO{i}"})
        return 0
    if command == "drain-at":
        time.sleep(max(0.0, float(argv[3]) - time.time()))
    store.dispatcher({"post": remote}, settings).drain()
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
