"""The ACS file drop: a local folder by default, SFTP when ``settings.stock.sftp_host`` is set.

Both list the regular files directly in the folder whose names match a glob, and
fetch one by name to a local path. Neither ever follows a symbolic link or reads a
path outside the folder: a name with a separator, ``..`` or a link is refused,
because the drop is written by another party.

SFTP host keys are trusted on first use and pinned in ``<data_dir>/acs_sftp_known_hosts``
(a changed key is refused); pre-seed that file to pin a key before the first connection.
"""

from __future__ import annotations

import fnmatch
import io
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.connectors.errors import PermanentError, TransientError

KNOWN_HOSTS_FILE = "acs_sftp_known_hosts"
# Files fetched over SFTP are kept here (under the data folder) for the reader and the ledger.
INBOX_FOLDER = "acs_inbox"


@dataclass(frozen=True)
class DropEntry:
    name: str
    size: int
    mtime: datetime  # aware UTC


class UnsafeDropPath(PermanentError):
    """A name that would leave the drop folder or go through a link."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__(f"refusing ACS drop entry {name!r}: {why}", system="acs", operation="drop")


class AcsDrop(Protocol):
    def list(self, pattern: str) -> list[DropEntry]: ...

    def fetch(self, name: str) -> Path: ...


def _check_name(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise UnsafeDropPath(name, "not a plain file name in the drop folder")


def _mtime(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class LocalDrop:
    """A folder on this machine (the sandbox writes here)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def list(self, pattern: str) -> list[DropEntry]:
        if not self.folder.is_dir():
            return []
        out = []
        with os.scandir(self.folder) as entries:
            for entry in entries:
                if not fnmatch.fnmatchcase(entry.name, pattern):
                    continue
                # Never follow links: a link's own lstat is not a regular file.
                if not entry.is_file(follow_symlinks=False):
                    continue
                info = entry.stat(follow_symlinks=False)
                out.append(DropEntry(entry.name, info.st_size, _mtime(info.st_mtime)))
        return sorted(out, key=lambda e: e.name)

    def fetch(self, name: str) -> Path:
        _check_name(name)
        path = self.folder / name
        try:
            info = path.lstat()
        except FileNotFoundError:
            raise PermanentError(
                f"{name} is not in the ACS drop folder {self.folder}",
                system="acs",
                operation="drop",
            ) from None
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeDropPath(name, "not a regular file (a link or a folder)")
        if path.resolve().parent != self.folder.resolve():
            raise UnsafeDropPath(name, "resolves outside the drop folder")
        return path


class SftpDrop:
    """The drop on ACS's SFTP server (paramiko). Files are fetched into a local inbox."""

    def __init__(self, settings: Settings) -> None:
        import paramiko

        conf = settings.stock
        if not conf.sftp_host or not conf.sftp_username:
            raise PermanentError(
                "stock.sftp_host and stock.sftp_username are both required",
                system="acs",
                operation="drop",
            )
        self.folder = conf.sftp_folder.rstrip("/") or "/"
        self.inbox = settings.data_dir / INBOX_FOLDER
        known_hosts = settings.data_dir / KNOWN_HOSTS_FILE
        client = paramiko.SSHClient()
        if known_hosts.exists():
            client.load_host_keys(str(known_hosts))
        # Trust on first use; a key that later differs raises BadHostKeyException.
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        try:
            client.connect(
                conf.sftp_host,
                port=conf.sftp_port,
                username=conf.sftp_username,
                password=conf.sftp_password.get_secret_value() if conf.sftp_password else None,
                pkey=_private_key(conf.sftp_private_key.get_secret_value())
                if conf.sftp_private_key
                else None,
                timeout=settings.http.connect_timeout_s,
                banner_timeout=settings.http.connect_timeout_s,
                auth_timeout=settings.http.connect_timeout_s,
                allow_agent=False,
                look_for_keys=False,
            )
        except paramiko.AuthenticationException as exc:
            client.close()
            raise PermanentError(
                f"SFTP login to {conf.sftp_host} refused: {exc}", system="acs", operation="drop"
            ) from None
        except (OSError, paramiko.SSHException) as exc:
            client.close()
            if isinstance(exc, paramiko.BadHostKeyException):
                raise PermanentError(
                    f"SFTP host key of {conf.sftp_host} changed: {exc}",
                    system="acs",
                    operation="drop",
                ) from None
            raise TransientError(
                f"SFTP {conf.sftp_host} unreachable: {exc}", system="acs", operation="drop"
            ) from None
        known_hosts.parent.mkdir(parents=True, exist_ok=True)
        client.save_host_keys(str(known_hosts))
        self._client = client
        self._sftp = client.open_sftp()
        self._sftp.get_channel().settimeout(settings.http.read_timeout_s)

    def close(self) -> None:
        self._sftp.close()
        self._client.close()

    def list(self, pattern: str) -> list[DropEntry]:
        out = []
        # listdir_attr gives each entry's own attributes (lstat): links are not S_ISREG.
        for attr in self._sftp.listdir_attr(self.folder):
            name = attr.filename
            if not fnmatch.fnmatchcase(name, pattern) or attr.st_mode is None:
                continue
            if not stat.S_ISREG(attr.st_mode) or "/" in name:
                continue
            out.append(DropEntry(name, int(attr.st_size or 0), _mtime(float(attr.st_mtime or 0))))
        return sorted(out, key=lambda e: e.name)

    def fetch(self, name: str) -> Path:
        _check_name(name)
        remote = f"{self.folder}/{name}"
        info = self._sftp.lstat(remote)
        if info.st_mode is None or not stat.S_ISREG(info.st_mode):
            raise UnsafeDropPath(name, "not a regular file on the SFTP server")
        local = self.inbox / name
        if local.exists():
            have = local.stat()
            if have.st_size == info.st_size and int(have.st_mtime) == int(info.st_mtime or 0):
                return local
        self.inbox.mkdir(parents=True, exist_ok=True)
        partial = self.inbox / f".{name}.part"
        self._sftp.get(remote, str(partial))
        if info.st_mtime is not None:
            os.utime(partial, (info.st_mtime, info.st_mtime))
        partial.replace(local)
        return local


def _private_key(text: str) -> object:
    import paramiko

    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError):
            continue
    raise PermanentError(
        "stock.sftp_private_key is not a readable private key", system="acs", operation="drop"
    )


@contextmanager
def open_drop(settings: Settings) -> Iterator[AcsDrop]:
    """The configured drop: SFTP when ``stock.sftp_host`` is set, else the local folder."""
    if settings.stock.sftp_host:
        drop = SftpDrop(settings)
        try:
            yield drop
        finally:
            drop.close()
    else:
        yield LocalDrop(settings.drop_folder)
