"""Files the integration writes are its own: private folders, private files.

The data folder holds the store (SQLite and its WAL: every order, effect and exception),
ACS's stock and returns files, snapshots and the reconciliation; none of it is for other
users of the machine. So, whatever the process's umask:

- folders the integration creates are ``0700``;
- files it creates are ``0600`` (``PRIVATE_FILE``), created with that mode from the
  start (never created readable and narrowed afterwards, which leaves a window);
- the finance pack is ``0640`` (``SHARED_FILE``): readable by the service's group, so a
  finance share can be given that group without opening the rest of the data folder.

In production the systemd units also set ``UMask=0077``, which covers what Dagster itself
writes under ``DAGSTER_HOME``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
SHARED_FILE = 0o640


def private_dir(path: Path, mode: int = PRIVATE_DIR) -> Path:
    """Create ``path`` and any missing parent with ``mode``; folders that exist are left alone.

    ``Path.mkdir(parents=True, mode=…)`` gives the mode to the last folder only, and the
    umask applies on top: each missing folder is created, then set to exactly ``mode``.
    """
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=mode)
        except FileExistsError:
            continue  # another process made it first; its mode is its creator's business
        os.chmod(folder, mode)
    return path


def create_private(path: Path, mode: int = PRIVATE_FILE) -> int:
    """Create ``path`` (it must not exist) with ``mode`` from the start; returns the fd."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    # The umask may have taken bits away, never added any: set exactly what was asked.
    os.fchmod(fd, mode)
    return fd


@contextmanager
def private_partial(path: Path, mode: int = PRIVATE_FILE) -> Iterator[Path]:
    """An empty file created with ``mode``, renamed over ``path`` when the block succeeds.

    Write it by path (opening an existing file keeps its mode). A reader never sees half
    a file, and the file is never readable by others, not even while it is being written.
    """
    private_dir(path.parent)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    if partial.exists():
        partial.unlink()  # left by a crash of a process with this very pid; never read
    os.close(create_private(partial, mode))
    try:
        yield partial
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()


def tighten(path: Path, mode: int = PRIVATE_FILE) -> None:
    """Take group and other permissions beyond ``mode`` off an existing file."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) & ~mode:
        os.chmod(path, stat.S_IMODE(info.st_mode) & mode)
