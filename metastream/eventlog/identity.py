"""Noticing that the database file was deleted or replaced under a running consumer.

SQLite keeps writing to the file it opened: delete ``metastream.db`` (or
move another file into its place) and a consumer goes on committing to the
unlinked inode, acks, and the stream is trimmed. After a restart every
event since is gone, with no warning. So the consumer records the file's
``(st_dev, st_ino)`` when it opens it and compares them with an
``os.stat`` of the path (~2 µs) before each transaction and once more
before acknowledging; on a mismatch or a missing file it stops without
acking anything more: the entries stay in the stream, and a consumer
restarted on the database now at that path writes them there.

The check is the SQLite log's answer to ``EventLog.problem``
(``SqliteEventLog.open`` records the identity); the consumer only asks.
"""

from __future__ import annotations

import os
from pathlib import Path

from metastream.errors import StoreError


class DatabaseReplaced(StoreError):
    """The database file was deleted or replaced while the consumer had it open."""


class DatabaseIdentity:
    """The identity of the database file at ``path`` as it was opened."""

    def __init__(self, path: Path) -> None:
        self.path = path
        info = os.stat(path)
        self.device = info.st_dev
        self.inode = info.st_ino

    def problem(self) -> str | None:
        """Why the file at ``path`` is not the one opened, or ``None`` if it is.

        An ``OSError`` other than a missing file (a permission problem, say)
        is raised: it is the environment's, and retrying may get past it.
        """
        try:
            info = os.stat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            how = "deleted"
        else:
            if (info.st_dev, info.st_ino) == (self.device, self.inode):
                return None
            how = "replaced by another file"
        return (
            f"the database at {self.path} was {how} while the consumer ran; "
            "nothing more was acked: the events stay in the stream. Restart the "
            "consumer to write them to the database now at that path"
        )
