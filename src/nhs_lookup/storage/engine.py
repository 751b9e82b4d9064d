"""The one SQLAlchemy engine factory of ``nhs_lookup``: URL (or SQLite file path) -> engine.

Used by the training store (``framework/store.py``, SQLAlchemy Core), the review service
(``service/db.py``, ORM) and the optimiser's Optuna storage, so every database gets the same settings:

- SQLite: WAL journal (readers never block the writer; a killed process never corrupts the file),
  ``synchronous=NORMAL`` (durable across process kills in WAL mode), a 30 s busy timeout, foreign keys
  on, and connections usable from the service's threads;
- anything else (e.g. ``postgresql+psycopg://user@host/db``): a pool that checks connections before use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine

BUSY_TIMEOUT_S = 30


#: Driverless PostgreSQL URL prefixes, mapped to psycopg 3 (the driver in the ``distributed`` extra).
_PG_PREFIXES = ("postgresql://", "postgres://")


def database_url(db: str) -> str:
    """A SQLAlchemy URL as given (``postgresql://`` mapped to psycopg), or a file path as a SQLite URL."""
    for prefix in _PG_PREFIXES:
        if db.startswith(prefix):
            return "postgresql+psycopg://" + db[len(prefix) :]
    if "://" in db:
        return db
    return f"sqlite:///{Path(db).expanduser()}"


def _is_memory(url: str) -> bool:
    return url in ("sqlite://", "sqlite:///:memory:") or "mode=memory" in url


def add_sqlite_pragmas(engine: Engine) -> None:
    """Apply the SQLite settings above to every new connection of *engine* (other databases untouched)."""
    if engine.dialect.name != "sqlite":
        return
    memory = _is_memory(str(engine.url))

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cur = dbapi_connection.cursor()
        if not memory:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    engine.dispose()  # connections opened before the listener was added are dropped


def make_engine(db: str) -> Engine:
    """SQLAlchemy engine for a URL or a SQLite file path, with the settings in the module docstring."""
    url = database_url(db)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_S})
        add_sqlite_pragmas(engine)
        return engine
    if url.startswith("postgresql+psycopg"):
        _require_psycopg()
    return create_engine(url, pool_pre_ping=True)


def _require_psycopg() -> None:
    """One clear line instead of a driver traceback when psycopg is not installed."""
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        raise ValueError(
            "PostgreSQL needs the psycopg driver: pip install 'radiology-qc[distributed]'"
        ) from exc
