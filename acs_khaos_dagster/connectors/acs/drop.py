"""The ACS file drop: a local folder by default, SFTP when ``settings.stock.sftp_host`` is set.

Both list the regular files directly in the folder whose names match a glob, and
fetch one by name into a private inbox under the data folder (``0600`` files in a
``0700`` folder), which is what every reader then opens. Neither ever follows a symbolic
link or reads a path outside the folder: a name with a separator, ``..`` or a link is
refused, because the drop is written by another party.

The local drop opens the entry itself with ``O_NOFOLLOW`` relative to the open folder,
checks what it opened (``fstat``: a regular file) and copies from that descriptor. There
is no check-then-open window in which the entry could be swapped for a link, and the
copy cannot change between the ledger's hash and the parse.

SFTP requires the server's host key to be pinned (``stock.sftp_host_key``) or listed in a
known_hosts file (``stock.sftp_known_hosts``); any other key is refused, on the first
connection too. The refusal names the key the server offered (its SHA-256 fingerprint)
so that it can be checked with ACS out of band and pinned.
"""

from __future__ import annotations

import base64
import errno
import fnmatch
import hashlib
import io
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Protocol

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.connectors.errors import PermanentError, TransientError
from acs_khaos_dagster.private_files import private_dir, private_partial

# Files fetched from the drop (local or SFTP) are kept here, under the data folder, for the
# reader and the ledger.
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
    """A folder on this machine (the sandbox writes here); fetched files go to ``inbox``."""

    def __init__(self, folder: Path, inbox: Path | None = None) -> None:
        self.folder = folder
        self.inbox = inbox if inbox is not None else folder.parent / INBOX_FOLDER

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
        """Copy the regular file ``name`` into the inbox; a link, a FIFO or a folder is refused.

        The entry is opened, never looked up and then opened: ``O_NOFOLLOW`` refuses a
        link in the same system call that opens, and ``fstat`` checks the very file that
        was opened. ``O_NONBLOCK`` keeps a FIFO planted under a file's name from blocking.
        """
        _check_name(name)
        try:
            folder_fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise PermanentError(
                f"the ACS drop folder {self.folder} does not exist", system="acs", operation="drop"
            ) from None
        try:
            fd = os.open(
                name,
                os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                dir_fd=folder_fd,
            )
        except FileNotFoundError:
            raise PermanentError(
                f"{name} is not in the ACS drop folder {self.folder}",
                system="acs",
                operation="drop",
            ) from None
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            # O_NOFOLLOW refused to open it: the entry is a symbolic link.
            raise UnsafeDropPath(name, "not a regular file (a symbolic link)") from None
        finally:
            os.close(folder_fd)
        with os.fdopen(fd, "rb") as source:
            info = os.fstat(source.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise UnsafeDropPath(name, "not a regular file (a link or a folder)")
            return _copy_into(self.inbox, name, source, info.st_size, info.st_mtime_ns)


def _copy_into(inbox: Path, name: str, source: BinaryIO, size: int, mtime_ns: int) -> Path:
    """The inbox copy of ``name`` (``0600``), taken again when its size or mtime changed.

    The modification time is compared to the nanosecond, so a file rewritten with the
    same size within one second is still copied again.
    """
    local = inbox / name
    try:
        have = local.stat()
        if have.st_size == size and have.st_mtime_ns == mtime_ns:
            return local
    except FileNotFoundError:
        pass
    private_dir(inbox)
    digest = hashlib.sha256()
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    with private_partial(local) as partial:
        with partial.open("wb") as target:
            # One pass: each chunk is hashed (for the file ledger) as it is copied.
            while read := source.readinto(buffer):  # type: ignore[attr-defined]
                chunk = view[:read]
                digest.update(chunk)
                target.write(chunk)
        os.utime(partial, ns=(mtime_ns, mtime_ns))
    _remember_sha256(local, digest.hexdigest())
    return local


_CHUNK = 1 << 20
# Inbox copies this process made, with the SHA-256 of what it wrote: path ->
# (identity of the file written, hex digest). Bounded: oldest dropped first.
_COPIED_SHA256: dict[str, tuple[tuple[int, int, int, int], str]] = {}
_COPIED_KEEP = 64


def _identity(path: Path) -> tuple[int, int, int, int]:
    info = path.stat()
    # Any write, truncation, rename or utime since changes the change time (ctime).
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _remember_sha256(path: Path, sha256: str) -> None:
    _COPIED_SHA256.pop(str(path), None)
    _COPIED_SHA256[str(path)] = (_identity(path), sha256)
    while len(_COPIED_SHA256) > _COPIED_KEEP:
        del _COPIED_SHA256[next(iter(_COPIED_SHA256))]


def copied_sha256(path: Path) -> str | None:
    """The SHA-256 (hex) of an inbox file taken while this process copied it out of the
    drop, if the file is still exactly what was written then; else None (hash it)."""
    known = _COPIED_SHA256.get(str(path))
    if known is None:
        return None
    try:
        same = _identity(path) == known[0]
    except FileNotFoundError:
        same = False
    if not same:
        del _COPIED_SHA256[str(path)]
        return None
    return known[1]


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
        client = paramiko.SSHClient()
        _pin_host_keys(client, settings)
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
        except UnknownHostKey:
            client.close()
            raise
        except paramiko.AuthenticationException as exc:
            client.close()
            raise PermanentError(
                f"SFTP login to {conf.sftp_host} refused: {exc}", system="acs", operation="drop"
            ) from None
        except (OSError, paramiko.SSHException) as exc:
            client.close()
            if isinstance(exc, paramiko.BadHostKeyException):
                raise UnknownHostKey(
                    conf.sftp_host, exc.key, "is not the pinned host key"
                ) from None
            raise TransientError(
                f"SFTP {conf.sftp_host} unreachable: {exc}", system="acs", operation="drop"
            ) from None
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
        with private_partial(local) as partial:
            self._sftp.get(remote, str(partial))
            if info.st_mtime is not None:
                os.utime(partial, (info.st_mtime, info.st_mtime))
        return local


class UnknownHostKey(PermanentError):
    """The SFTP server offered a host key that is not pinned: refused, never trusted."""

    def __init__(self, host: str, key: object, why: str = "is not pinned") -> None:
        fingerprint = _fingerprint(key)
        super().__init__(
            f"SFTP host key of {host} {why}: the server offered {fingerprint}; "
            "check it with ACS and pin it (stock.sftp_host_key or stock.sftp_known_hosts)",
            system="acs",
            operation="drop",
        )
        self.fingerprint = fingerprint


def _fingerprint(key: object) -> str:
    blob = key.asbytes()  # type: ignore[attr-defined]
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"{key.get_name()} SHA256:{digest}"  # type: ignore[attr-defined]


def _pin_host_keys(client: object, settings: Settings) -> None:
    """Load the pinned key and the known_hosts file; refuse any other key, first time too."""
    import paramiko

    conf = settings.stock
    assert isinstance(client, paramiko.SSHClient)

    class _Refuse(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, _client: object, hostname: str, key: object) -> None:
            raise UnknownHostKey(hostname, key)

    client.set_missing_host_key_policy(_Refuse())
    if conf.sftp_known_hosts is not None:
        try:
            client.load_host_keys(str(conf.sftp_known_hosts))
        except OSError as exc:
            raise PermanentError(
                f"stock.sftp_known_hosts {conf.sftp_known_hosts} cannot be read "
                f"({type(exc).__name__})",
                system="acs",
                operation="drop",
            ) from None
    if conf.sftp_host_key:
        key_type, blob = conf.sftp_host_key.split()[:2]
        key = paramiko.PKey.from_type_string(key_type, base64.b64decode(blob))
        host = str(conf.sftp_host)
        # known_hosts names a server on another port than 22 as "[host]:port".
        names = {host, f"[{host}]:{conf.sftp_port}"}
        for name in names:
            client.get_host_keys().add(name, key_type, key)


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
        yield LocalDrop(settings.drop_folder, settings.data_dir / INBOX_FOLDER)
