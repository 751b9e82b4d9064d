"""Persistence shared by the lookup packages: one SQLAlchemy engine factory (:mod:`.engine`)."""

from nhs_lookup.storage.engine import add_sqlite_pragmas, database_url, make_engine

__all__ = ["add_sqlite_pragmas", "database_url", "make_engine"]
