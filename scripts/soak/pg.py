"""The soak's own PostgreSQL: a cluster initdb'd into its work folder on a free loopback port.

The soak stops and restarts it mid-run, so it never uses a shared server (the one on 5432
serves the other test runs on the machine). As root, the server runs as ``postgres``
(initdb refuses root); trust authentication on loopback only.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa


def _bin(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None
    )
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    def __init__(self, folder: Path) -> None:
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            # The server runs as postgres, which may not traverse the work folder's parents
            # (pytest's are root-only): the cluster lives in a temp folder of its own,
            # linked from the work folder.
            folder.parent.mkdir(parents=True, exist_ok=True)
            own = Path(tempfile.mkdtemp(prefix="acs-khaos-soak-pg-"))
            folder.symlink_to(own, target_is_directory=True)
            folder = own
        self.folder = folder
        self.data = folder / "data"
        self.log = folder / "server.log"
        self.port = free_port()

    def _run(self, *argv: str) -> None:
        command = list(argv)
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{' '.join(argv[:2])} failed: {done.stderr.strip()[-2000:]}")

    def init(self) -> Cluster:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self._as_postgres:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run(
            _bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8"
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.folder}'\nmax_connections = 200\n"
                "fsync = on\nshared_buffers = 64MB\n"
            )
        return self

    def start(self) -> None:
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "start")

    def stop(self, mode: str = "immediate") -> None:
        """``immediate``: like a crash (no checkpoint; recovery on the next start)."""
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, down_s: float = 3.0) -> None:
        self.stop("immediate")
        time.sleep(down_s)
        self.start()

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        engine = sa.create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.url(name)
