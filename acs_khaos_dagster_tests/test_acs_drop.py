"""The ACS drop: a local folder, or a real SFTP server on loopback (asyncssh).

Security (issue 20, point 8): the local drop opens entries with ``O_NOFOLLOW`` (no
check-then-open race) and hands readers a private copy; SFTP refuses any host key that
is not pinned, on the first connection too, before a password is sent.
"""

from __future__ import annotations

import asyncio
import os
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from acs_khaos_dagster.config import SettingsError, load_settings
from acs_khaos_dagster.connectors.acs.drop import (
    LocalDrop,
    UnknownHostKey,
    UnsafeDropPath,
    copied_sha256,
    open_drop,
)
from acs_khaos_dagster.connectors.errors import PermanentError

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


def test_a_fetched_file_is_a_private_copy_of_the_entry(tmp_path: Path) -> None:
    _files(tmp_path / "drop")
    drop = LocalDrop(tmp_path / "drop", tmp_path / "data" / "acs_inbox")
    old_umask = os.umask(0o022)
    try:
        local = drop.fetch("stock_units_BRAND01_20260302070000.csv")
    finally:
        os.umask(old_umask)

    assert local.parent == tmp_path / "data" / "acs_inbox"
    assert local.read_bytes() == b"a,b\r\n1,2\r\n"
    assert stat.S_IMODE(local.stat().st_mode) == 0o600
    assert stat.S_IMODE(local.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700


def test_a_fifo_planted_under_a_file_name_is_refused_without_blocking(tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    os.mkfifo(folder / "stock_units_FIFO_20260302070000.csv")

    with pytest.raises(UnsafeDropPath, match="not a regular file"):
        LocalDrop(folder).fetch("stock_units_FIFO_20260302070000.csv")


def test_an_entry_swapped_for_a_link_while_fetching_never_yields_the_links_target(
    tmp_path: Path,
) -> None:
    """The race a check-then-open has: the entry flips between a file and a link."""
    folder = tmp_path / "drop"
    folder.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("root:$6$SECRET-HASH-NOT-FOR-THE-INTEGRATION\n")
    name = "stock_units_RACE_20260302070000.csv"
    (folder / name).write_text("sku\n")
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            os.symlink(secret, folder / "flip.link")
            os.replace(folder / "flip.link", folder / name)
            (folder / "flip.tmp").write_text("sku\n")
            os.replace(folder / "flip.tmp", folder / name)

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    outcomes = {"copied": 0, "refused": 0}
    deadline = time.monotonic() + 1.5
    try:
        while time.monotonic() < deadline:
            drop = LocalDrop(folder, tmp_path / f"inbox{sum(outcomes.values())}")
            try:
                local = drop.fetch(name)
            except UnsafeDropPath:
                outcomes["refused"] += 1
                continue
            assert "SECRET" not in local.read_text()
            outcomes["copied"] += 1
    finally:
        stop.set()
        swapper.join(5)
    assert outcomes["copied"] and outcomes["refused"], outcomes


# --- SFTP -----------------------------------------------------------------------------------


@dataclass
class SftpServer:
    port: int
    outbound: Path
    host_key: str  # "ssh-ed25519 AAAA…", the public half as known_hosts writes it
    passwords_seen: list[str] = field(default_factory=list)


@pytest.fixture
def sftp_server(tmp_path: Path) -> Iterator[SftpServer]:
    asyncssh = pytest.importorskip("asyncssh")
    root = tmp_path / "sftp_root"
    (root / "outbound").mkdir(parents=True)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    public = " ".join(host_key.export_public_key("openssh").decode().split()[:2])
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, object] = {}
    passwords: list[str] = []

    class Server(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, password: str) -> bool:
            passwords.append(password)
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
        yield SftpServer(int(holder["port"]), root / "outbound", public, passwords)  # type: ignore[arg-type]
    finally:

        async def stop() -> None:
            holder["server"].close()  # type: ignore[attr-defined]

        asyncio.run_coroutine_threadsafe(stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def _sftp_env(server: SftpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACS_KHAOS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ACS_KHAOS_STOCK__SFTP_HOST", "127.0.0.1")
    monkeypatch.setenv("ACS_KHAOS_STOCK__SFTP_PORT", str(server.port))
    monkeypatch.setenv("ACS_KHAOS_STOCK__SFTP_USERNAME", "acs")
    monkeypatch.setenv("ACS_KHAOS_STOCK__SFTP_PASSWORD", "s3cret")
    monkeypatch.setenv("ACS_KHAOS_STOCK__SFTP_FOLDER", "/outbound")


def test_the_sftp_drop_with_a_pinned_key_lists_and_fetches_without_following_links(
    sftp_server: SftpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outbound = sftp_server.outbound
    _files(outbound)
    _sftp_env(sftp_server, tmp_path, monkeypatch)
    monkeypatch.setenv("ACS_KHAOS_STOCK__SFTP_HOST_KEY", sftp_server.host_key)
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
    assert stat.S_IMODE(local.stat().st_mode) == 0o600
    # Nothing is trusted on first use: no known_hosts file is written behind the operator.
    assert not list((tmp_path / "data").glob("*known_hosts*"))


def test_the_sftp_drop_accepts_a_key_listed_in_a_known_hosts_file(
    sftp_server: SftpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _files(sftp_server.outbound)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{sftp_server.port} {sftp_server.host_key}\n")
    _sftp_env(sftp_server, tmp_path, monkeypatch)
    monkeypatch.setenv("ACS_KHAOS_STOCK__SFTP_KNOWN_HOSTS", str(known_hosts))

    with open_drop(load_settings()) as drop:
        assert [e.name for e in drop.list(GLOB)] == ["stock_units_BRAND01_20260302070000.csv"]


def test_an_sftp_server_offering_another_key_is_refused_before_the_password_is_sent(
    sftp_server: SftpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncssh = pytest.importorskip("asyncssh")
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode()
    _sftp_env(sftp_server, tmp_path, monkeypatch)
    monkeypatch.setenv("ACS_KHAOS_STOCK__SFTP_HOST_KEY", " ".join(other.split()[:2]))

    with pytest.raises(UnknownHostKey) as refused, open_drop(load_settings()):
        pass

    assert isinstance(refused.value, PermanentError)
    assert "is not the pinned host key" in str(refused.value)
    assert "ssh-ed25519 SHA256:" in str(refused.value)
    assert "s3cret" not in str(refused.value)
    assert sftp_server.passwords_seen == []


def test_an_sftp_server_missing_from_the_known_hosts_file_is_refused(
    sftp_server: SftpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"acs-sftp.example {sftp_server.host_key}\n")
    _sftp_env(sftp_server, tmp_path, monkeypatch)
    monkeypatch.setenv("ACS_KHAOS_STOCK__SFTP_KNOWN_HOSTS", str(known_hosts))

    with pytest.raises(UnknownHostKey, match="is not pinned"), open_drop(load_settings()):
        pass
    assert sftp_server.passwords_seen == []


def test_sftp_without_a_pinned_key_is_a_settings_error_naming_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACS_KHAOS_STOCK__SFTP_HOST", "acs-sftp.example")
    monkeypatch.setenv("ACS_KHAOS_STOCK__SFTP_USERNAME", "acs")

    with pytest.raises(SettingsError, match=r"stock\.sftp_host_key or stock\.sftp_known_hosts"):
        load_settings()


def test_a_file_rewritten_in_the_same_second_with_the_same_size_is_copied_again(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    entry = folder / "stock_units_BRAND01_20260302070000.csv"
    entry.write_text("sku\nA1\n")
    drop = LocalDrop(folder, tmp_path / "inbox")
    first = drop.fetch(entry.name).read_text()
    entry.write_text("sku\nB2\n")

    assert (first, drop.fetch(entry.name).read_text()) == ("sku\nA1\n", "sku\nB2\n")


def test_the_hash_taken_while_copying_is_the_ledgers_and_never_outlives_a_change(
    tmp_path: Path,
) -> None:
    from acs_khaos_dagster.store.ledger import file_sha256

    folder = tmp_path / "drop"
    folder.mkdir()
    entry = folder / "stock_units_BRAND01_20260302070000.csv"
    # Several copy chunks and a part of one, so every chunk must reach the hash.
    entry.write_bytes(os.urandom((1 << 20) * 2 + 12345))
    drop = LocalDrop(folder, tmp_path / "inbox")
    local = drop.fetch(entry.name)

    assert copied_sha256(local) == file_sha256(local) == file_sha256(entry)
    # The inbox copy changed afterwards (same size, mtime put back): the hash is not trusted.
    info = local.stat()
    with local.open("r+b") as handle:
        handle.write(b"X")
    os.utime(local, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert copied_sha256(local) is None
    assert copied_sha256(tmp_path / "inbox" / "never_copied.csv") is None
