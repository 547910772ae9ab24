"""The emulator's SQLite connection: WAL mode, short transactions, schema migrations.

Everything the emulator knows lives in one SQLite file, so a killed emulator loses
nothing it acknowledged. The schema grows by numbered migrations; the number of the
last one applied is the file's ``PRAGMA user_version``, so a database written by an
older emulator is brought up to date when it is opened (and one written by a newer
emulator is refused rather than misread).

All methods run on the event loop's thread; statements are short and local.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from ...stores.sqlite import _use_wal
from .migrations import MIGRATIONS

__all__ = ["Database", "marks"]


class Database:
    """One SQLite connection with the emulator's schema, migrated to the latest version."""

    def __init__(self, path: str) -> None:
        """Open (or create) the database at ``path``; ``ValueError`` if it is unusable."""
        self.path = path
        try:
            self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.conn.row_factory = sqlite3.Row
            _use_wal(self.conn, 5.0)
            # NORMAL in WAL mode survives a killed process; only power loss can drop a commit.
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA busy_timeout=5000")
            self.migrate()
        except sqlite3.Error as exc:
            raise ValueError(f"cannot use the database {path}: {exc}") from None

    @property
    def version(self) -> int:
        """The schema version of the file (``PRAGMA user_version``)."""
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        """Apply every migration newer than the file's ``user_version``, each atomically."""
        current = self.version
        if current > len(MIGRATIONS):
            raise ValueError(
                f"the database {self.path} has schema version {current}, newer than this "
                f"emulator's {len(MIGRATIONS)}; upgrade commet-webhooks or use another --db"
            )
        for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
            # executescript commits first; the script's own BEGIN/COMMIT makes it atomic.
            self.conn.executescript(
                f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;"
            )

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; nested uses join the outer one."""
        if self.conn.in_transaction:
            yield self.conn
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def next_number(self, counter: str) -> int:
        """Increment and return a named counter (invoice numbers)."""
        with self.transaction() as conn:
            row = conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, 1) "
                "ON CONFLICT (key) DO UPDATE SET value = value + 1 RETURNING value",
                (counter,),
            ).fetchone()
        return int(row["value"])


def marks(values: Sequence[object]) -> str:
    """``?, ?, ?``: one bound parameter per value (the SQL never holds the values)."""
    return ", ".join("?" * len(values))
