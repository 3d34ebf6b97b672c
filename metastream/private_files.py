"""Files only their owner can read: METASTREAM_HOME is 0700, what metastream writes in it 0600.

The home holds the database (every value ever logged), the Redis AOF (the
same events), ``stack.json`` (the local Redis's password) and logs, so on
a shared machine none of it is for other users. Processes that create files
there (the Redis server, the consumer) run with the umask :data:`UMASK`;
files metastream creates itself are opened with mode 0600 from the start,
never chmod-ed after a moment of being readable.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Final

UMASK: Final = 0o077
"""The umask of the processes the local stack starts: new files 0600, new directories 0700."""
DIR_MODE: Final = 0o700
FILE_MODE: Final = 0o600


def make_private_dir(path: Path) -> Path:
    """Create ``path`` with mode 0700 if it does not exist, and its missing parents too.

    (``Path.mkdir(parents=True)`` would give the parents the default mode: a
    home created on the way to its ``spool/`` would be open to all.) An
    existing directory keeps its mode: see :func:`tighten_dir`.
    """
    missing = []
    current = path
    while not current.exists() and current.parent != current:  # one stat when it exists
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        directory.mkdir(mode=DIR_MODE, exist_ok=True)
    return path


def tighten_dir(path: Path) -> int | None:
    """Make ``path`` 0700 if others may enter it; its old mode if it was changed.

    ``None`` when nothing changed (already private, missing, or not ours to change).
    """
    try:
        info = path.stat()
    except OSError:
        return None
    mode = stat.S_IMODE(info.st_mode)
    if not stat.S_ISDIR(info.st_mode) or not mode & 0o077 or info.st_uid != os.getuid():
        return None
    try:
        path.chmod(mode & ~0o077 | DIR_MODE)
    except OSError:
        return None
    return mode


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist (an existing file is left as is).

    SQLite gives a database's ``-wal`` and ``-shm`` files the database
    file's mode, so creating the database file this way first makes all
    three private.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)


def open_private_append(path: Path) -> int:
    """A file descriptor appending to ``path``, created 0600 (an existing file is made 0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except OSError:
        pass
    return fd


def write_private_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (readers never see half a file), mode 0600."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # a stale temporary file may have had another mode
        with os.fdopen(fd, "w") as out:
            out.write(text)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)


__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "UMASK",
    "create_private_file",
    "make_private_dir",
    "open_private_append",
    "tighten_dir",
    "write_private_text",
]
