"""The ACS drop: a local folder, or a real SFTP server on loopback (asyncssh)."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from acs_khaos_dagster.config import load_settings
from acs_khaos_dagster.connectors.acs.drop import LocalDrop, UnsafeDropPath, open_drop

GLOB = "stock_units_*.csv"


def _files(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stock_units_BRAND01_20260302070000.csv").write_text("a,b\r\n1,2\r\n")
    (folder / "returns_BRAND01_20260302070000.csv").write_text("x\r\n")
    outside = folder.parent / "secret.csv"
    outside.write_text("do not read\r\n")
    (folder / "stock_units_LINK_20260302070000.csv").symlink_to(outside)


def test_the_local_drop_lists_matching_regular_files_only(tmp_path: Path) -> None:
    _files(tmp_path / "drop")
    drop = LocalDrop(tmp_path / "drop")

    assert [e.name for e in drop.list(GLOB)] == ["stock_units_BRAND01_20260302070000.csv"]


def test_the_local_drop_never_follows_a_link_or_leaves_the_folder(tmp_path: Path) -> None:
    _files(tmp_path / "drop")
    drop = LocalDrop(tmp_path / "drop")

    with pytest.raises(UnsafeDropPath):
        drop.fetch("stock_units_LINK_20260302070000.csv")
    with pytest.raises(UnsafeDropPath):
        drop.fetch("../secret.csv")


@pytest.fixture
def sftp_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    asyncssh = pytest.importorskip("asyncssh")
    root = tmp_path / "sftp_root"
    (root / "outbound").mkdir(parents=True)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, object] = {}

    class Server(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, password: str) -> bool:
            return username == "acs" and password == "s3cret"

    def chrooted(chan: object) -> object:
        return asyncssh.SFTPServer(chan, chroot=str(root).encode())

    async def start() -> None:
        server = await asyncssh.create_server(
            Server,
            "127.0.0.1",
            0,
            server_host_keys=[host_key],
            sftp_factory=chrooted,
        )
        holder["server"] = server
        holder["port"] = server.sockets[0].getsockname()[1]
        started.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield int(holder["port"]), root / "outbound"  # type: ignore[arg-type]
    finally:

        async def stop() -> None:
            holder["server"].close()  # type: ignore[attr-defined]

        asyncio.run_coroutine_threadsafe(stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def test_the_sftp_drop_lists_and_fetches_without_following_links(
    sftp_server: tuple[int, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port, outbound = sftp_server
    _files(outbound)
    monkeypatch.setenv("ACS_KHAOS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ACS_KHAOS_STOCK__SFTP_HOST", "127.0.0.1")
    monkeypatch.setenv("ACS_KHAOS_STOCK__SFTP_PORT", str(port))
    monkeypatch.setenv("ACS_KHAOS_STOCK__SFTP_USERNAME", "acs")
    monkeypatch.setenv("ACS_KHAOS_STOCK__SFTP_PASSWORD", "s3cret")
    monkeypatch.setenv("ACS_KHAOS_STOCK__SFTP_FOLDER", "/outbound")
    settings = load_settings()

    with open_drop(settings) as drop:
        entries = drop.list(GLOB)
        names = [e.name for e in entries]
        local = drop.fetch(names[0])
        with pytest.raises(UnsafeDropPath):
            drop.fetch("stock_units_LINK_20260302070000.csv")

    assert names == ["stock_units_BRAND01_20260302070000.csv"]
    assert local.read_bytes() == (outbound / names[0]).read_bytes()
    assert entries[0].size == os.path.getsize(outbound / names[0])
    # The host key is pinned on first use.
    assert (tmp_path / "data" / "acs_sftp_known_hosts").read_text().strip()
