"""Tables of the review service (SQLAlchemy ORM) and the small records passed to and from the store.

Decisions are append-only: every reviewer action adds a row, and the mapping row holds the current
state derived from the latest one. Jobs store all their items up front, so a job cut short by a
restart can be finished by processing only the items still missing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from nhs_lookup.records import ExamQuery


def utcnow() -> str:
    """UTC timestamp as ISO 8601 text (sortable, unambiguous in every database)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Base(DeclarativeBase):
    pass


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), index=True)  # queued running done failed interrupted
    total: Mapped[int] = mapped_column(Integer, default=0)
    processed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    row_errors: Mapped[list] = mapped_column(JSON, default=list)  # rows of the upload that were not read
    engine_info: Mapped[dict] = mapped_column(JSON, default=dict)  # versions, catalogue, config used
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[str | None] = mapped_column(String(32))
    finished_at: Mapped[str | None] = mapped_column(String(32))
    resumed_count: Mapped[int] = mapped_column(Integer, default=0)


class JobItem(Base):
    __tablename__ = "job_items"
    __table_args__ = (UniqueConstraint("job_id", "position"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)  # 1-based row of the input
    data_source: Mapped[str | None] = mapped_column(String(128))
    modality_code: Mapped[str | None] = mapped_column(String(32))
    exam_code: Mapped[str | None] = mapped_column(String(64))
    exam_name: Mapped[str] = mapped_column(String(500))
    done: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    result: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    mapping_id: Mapped[int | None] = mapped_column(Integer)
    remembered: Mapped[bool] = mapped_column(Boolean, default=False)

    def query(self) -> ExamQuery:
        return ExamQuery(self.exam_name, self.modality_code, self.exam_code, self.data_source)


class Mapping(Base):
    __tablename__ = "mappings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    data_source: Mapped[str | None] = mapped_column(String(128), index=True)
    exam_code: Mapped[str | None] = mapped_column(String(64))
    exam_name: Mapped[str] = mapped_column(String(500))
    modality_code: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), index=True)
    status_by: Mapped[str] = mapped_column(String(8), default="auto")  # auto | human
    target_name: Mapped[str | None] = mapped_column(String(500), index=True)
    target_snomed_id: Mapped[str | None] = mapped_column(String(32))
    target_fsn: Mapped[str | None] = mapped_column(String(500))
    target_nicip: Mapped[str | None] = mapped_column(String(32))
    target_laterality_id: Mapped[str | None] = mapped_column(String(32))
    target_laterality: Mapped[str | None] = mapped_column(String(200))
    target_modality: Mapped[str | None] = mapped_column(String(16))
    confidence: Mapped[float | None] = mapped_column(Float)
    flags: Mapped[list] = mapped_column(JSON, default=list)
    proposal: Mapped[dict | None] = mapped_column(JSON)  # the engine's latest result (to_dict + extras)
    rejected_targets: Mapped[list] = mapped_column(JSON, default=list)
    equivalence: Mapped[str | None] = mapped_column(String(16))
    reviewer: Mapped[str | None] = mapped_column(String(100))
    decided_at: Mapped[str | None] = mapped_column(String(32))
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[str] = mapped_column(String(32))
    last_job_id: Mapped[str | None] = mapped_column(String(32))


class Decision(Base):
    """One reviewer action. Never updated or deleted."""

    __tablename__ = "decisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    mapping_id: Mapped[int] = mapped_column(ForeignKey("mappings.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    target_name: Mapped[str | None] = mapped_column(String(500))
    previous_target: Mapped[str | None] = mapped_column(String(500))
    equivalence: Mapped[str | None] = mapped_column(String(16))
    confidence: Mapped[float | None] = mapped_column(Float)
    reviewer: Mapped[str] = mapped_column(String(100))
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[str] = mapped_column(String(32))


@dataclass(frozen=True)
class Target:
    """A catalogue row chosen as (or proposed for) a mapping's answer."""

    name: str
    snomed_id: str | None = None
    fsn: str | None = None
    nicip_code: str | None = None
    laterality_id: str | None = None
    laterality: str | None = None
    modality: str | None = None


@dataclass(frozen=True)
class QueueFilter:
    """Review-queue filters; ``status='needs_review'`` means unreviewed, flagged, rejected or deferred."""

    status: str | None = "needs_review"
    data_source: str | None = None
    modality: str | None = None  # RIS modality code
    band: str | None = None  # high | review | manual | low
    flag: str | None = None
    text: str | None = None


@dataclass
class Touched:
    """Catalogue targets and mapping ids changed in one transaction (for the singleton recount)."""

    targets: set[str] = field(default_factory=set)
    ids: set[int] = field(default_factory=set)


@dataclass
class ItemOutcome:
    """What processing one job item produced (written by :meth:`Store.save_job_results`)."""

    item_id: int
    result: dict[str, Any] | None
    error: str | None = None
    remembered: bool = False
    mapping_id: int | None = None
    target: Target | None = None
    confidence: float = 0.0
    flags: list[str] | None = None

    def __post_init__(self) -> None:
        if self.flags is None:
            self.flags = []
