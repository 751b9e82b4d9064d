"""Review labels in SQLite: every decision is a new row (history kept), the latest one counts.

One small file next to the run (``<results>/review/labels.sqlite`` by default); safe for the server's
threads (one connection, one lock). Rows hold the opaque clip id, never a path or a patient field.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

LABELS = ("good", "poor", "unsure")
MAX_COMMENT = 2000
MAX_REVIEWER = 100

_SCHEMA = """
CREATE TABLE IF NOT EXISTS labels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    clip_id TEXT NOT NULL,
    label TEXT NOT NULL CHECK (label IN ('good', 'poor', 'unsure')),
    comment TEXT NOT NULL DEFAULT '',
    reviewer TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS labels_clip ON labels (clip_id, id);
"""


class LabelError(ValueError):
    """A label that cannot be stored (unknown label, empty reviewer, text too long)."""


@dataclass(frozen=True)
class LabelEvent:
    """One reviewer decision."""

    id: int
    clip_id: str
    label: str
    comment: str
    reviewer: str
    created_at: str  # ISO 8601, UTC

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class LabelStore:
    """Append-only label history with the current label per clip."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.executescript(_SCHEMA)
        self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, clip_id: str, label: str, reviewer: str, comment: str = "") -> LabelEvent:
        """Store a decision; raises LabelError for an unknown label or an empty/too long field."""
        label = (label or "").strip().lower()
        reviewer = " ".join((reviewer or "").split())
        comment = (comment or "").strip()
        if label not in LABELS:
            raise LabelError(f"label must be one of {', '.join(LABELS)}, got {label[:20]!r}")
        if not reviewer or len(reviewer) > MAX_REVIEWER:
            raise LabelError(f"reviewer must be 1-{MAX_REVIEWER} characters")
        if len(comment) > MAX_COMMENT:
            raise LabelError(f"comment must be at most {MAX_COMMENT} characters")
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO labels (clip_id, label, comment, reviewer, created_at) VALUES (?, ?, ?, ?, ?)",
                (clip_id, label, comment, reviewer, now),
            )
            self._db.commit()
            row_id = int(cur.lastrowid or 0)
        return LabelEvent(row_id, clip_id, label, comment, reviewer, now)

    def history(self, clip_id: str | None = None) -> list[LabelEvent]:
        """Every decision (for one clip, or all), oldest first."""
        sql = "SELECT id, clip_id, label, comment, reviewer, created_at FROM labels"
        args: tuple[str, ...] = ()
        if clip_id is not None:
            sql, args = sql + " WHERE clip_id = ?", (clip_id,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY id", args).fetchall()
        return [LabelEvent(*row) for row in rows]

    def current(self) -> dict[str, LabelEvent]:
        """The latest decision per clip."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, clip_id, label, comment, reviewer, created_at FROM labels "
                "WHERE id IN (SELECT MAX(id) FROM labels GROUP BY clip_id)"
            ).fetchall()
        return {row[1]: LabelEvent(*row) for row in rows}

    def current_labels(self) -> dict[str, str]:
        return {k: v.label for k, v in self.current().items()}
