"""Persistence (SQLAlchemy; SQLite by default): batch jobs, their items, mappings and decisions.

Decisions are append-only: every reviewer action adds a row, and the mapping row holds the current
state derived from the latest one. Jobs store all their items up front, so a job cut short by a
restart can be finished by processing only the items still missing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    case,
    cast,
    create_engine,
    event,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from nhs_lookup.records import ExamQuery
from nhs_lookup.service.review import (
    BANDS,
    NEEDS_REVIEW,
    STATUS_PRIORITY,
    MappingKey,
    auto_status,
    blocking_flags,
)


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


def make_engine(url: str) -> Engine:
    """SQLAlchemy engine; SQLite gets WAL, a busy timeout and cross-thread use."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001
            cur = dbapi_conn.cursor()
            if ":memory:" not in url:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


class Store:
    """All database access of the service. Each method is one short transaction."""

    def __init__(self, url: str, *, flag_singletons: bool = True) -> None:
        self.url = url
        self.flag_singletons = flag_singletons
        self.engine = make_engine(url)
        Base.metadata.create_all(self.engine)
        self._session = sessionmaker(self.engine, expire_on_commit=False)

    def session(self) -> Session:
        return self._session()

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ jobs
    def create_job(
        self,
        name: str | None,
        queries: Sequence[tuple[int, ExamQuery]],
        row_errors: list[dict[str, Any]],
        engine_info: dict[str, Any],
    ) -> Job:
        job = Job(
            id=uuid.uuid4().hex,
            name=name,
            status="queued",
            total=len(queries),
            processed=0,
            failed=0,
            row_errors=row_errors,
            engine_info=engine_info,
            created_at=utcnow(),
        )
        with self.session() as s, s.begin():
            s.add(job)
            s.flush()
            s.bulk_insert_mappings(  # type: ignore[arg-type]
                JobItem,
                [
                    {
                        "job_id": job.id,
                        "position": pos,
                        "data_source": q.data_source,
                        "modality_code": q.modality_code,
                        "exam_code": q.exam_code,
                        "exam_name": q.exam_name,
                        "done": False,
                        "remembered": False,
                    }
                    for pos, q in queries
                ],
            )
        return job

    def get_job(self, job_id: str) -> Job | None:
        with self.session() as s:
            return s.get(Job, job_id)

    def list_jobs(self, limit: int = 50) -> list[Job]:
        with self.session() as s:
            return list(s.scalars(select(Job).order_by(Job.created_at.desc()).limit(limit)))

    def set_job_status(self, job_id: str, status: str, message: str | None = None) -> None:
        values: dict[str, Any] = {"status": status}
        now = utcnow()
        if status == "running":
            values["started_at"] = now
        if status in {"done", "failed", "interrupted"}:
            values["finished_at"] = now
        if message is not None:
            values["message"] = message
        with self.session() as s, s.begin():
            s.execute(update(Job).where(Job.id == job_id).values(**values))

    def pending_items(self, job_id: str, limit: int) -> list[JobItem]:
        with self.session() as s:
            stmt = (
                select(JobItem)
                .where(JobItem.job_id == job_id, JobItem.done.is_(False))
                .order_by(JobItem.position)
                .limit(limit)
            )
            return list(s.scalars(stmt))

    def recover_jobs(self, resume: bool) -> tuple[list[str], list[str]]:
        """Jobs left queued/running by a stopped process: (to resume, marked interrupted)."""
        with self.session() as s, s.begin():
            stale = list(
                s.scalars(select(Job).where(Job.status.in_(("queued", "running"))).order_by(Job.created_at))
            )
            resumed, interrupted = [], []
            for job in stale:
                if resume:
                    job.status = "queued"
                    job.resumed_count = (job.resumed_count or 0) + 1
                    job.message = f"resumed after a restart ({job.total - job.processed} item(s) left)"
                    resumed.append(job.id)
                else:
                    job.status = "interrupted"
                    job.finished_at = utcnow()
                    job.message = (
                        f"interrupted by a restart after {job.processed} of {job.total} item(s); "
                        "results so far are kept"
                    )
                    interrupted.append(job.id)
        return resumed, interrupted

    def job_items(self, job_id: str, offset: int = 0, limit: int | None = None) -> list[JobItem]:
        with self.session() as s:
            stmt = select(JobItem).where(JobItem.job_id == job_id).order_by(JobItem.position).offset(offset)
            if limit is not None:
                stmt = stmt.limit(limit)
            return list(s.scalars(stmt))

    def iter_job_items(self, job_id: str, chunk: int = 500) -> Iterator[JobItem]:
        offset = 0
        while True:
            items = self.job_items(job_id, offset, chunk)
            if not items:
                return
            yield from items
            offset += len(items)

    # -------------------------------------------------------------- mappings
    def mapping_by_key(self, key: MappingKey) -> Mapping | None:
        with self.session() as s:
            return s.scalar(select(Mapping).where(Mapping.key_hash == key.digest))

    def get_mapping(self, mapping_id: int) -> Mapping | None:
        with self.session() as s:
            return s.get(Mapping, mapping_id)

    def decisions(self, mapping_id: int) -> list[Decision]:
        with self.session() as s:
            stmt = select(Decision).where(Decision.mapping_id == mapping_id).order_by(Decision.id)
            return list(s.scalars(stmt))

    @staticmethod
    def _set_target(m: Mapping, target: Target | None) -> None:
        m.target_name = target.name if target else None
        m.target_snomed_id = target.snomed_id if target else None
        m.target_fsn = target.fsn if target else None
        m.target_nicip = target.nicip_code if target else None
        m.target_laterality_id = target.laterality_id if target else None
        m.target_laterality = target.laterality if target else None
        m.target_modality = target.modality if target else None

    def _upsert_proposal(
        self,
        s: Session,
        m: Mapping | None,
        query: ExamQuery,
        o: ItemOutcome,
        job_id: str | None,
        touched: _Touched,
        now: str,
    ) -> Mapping:
        """Create or update the mapping of *query* with a new engine proposal (no flush)."""
        if m is None:
            m = Mapping(
                key_hash=MappingKey.of(query.data_source, query.exam_code, query.exam_name).digest,
                data_source=query.data_source,
                exam_code=query.exam_code,
                exam_name=query.exam_name,
                modality_code=query.modality_code,
                status=auto_status(o.flags or []),
                status_by="auto",
                flags=[],
                rejected_targets=[],
                created_at=now,
            )
            s.add(m)
        if m.status_by == "auto" or m.status == "rejected":
            # Human decisions stand; only undecided (or rejected, awaiting a new target) proposals move.
            touched.targets.update(t for t in (m.target_name, o.target.name if o.target else None) if t)
            self._set_target(m, o.target)
            m.confidence = o.confidence
            m.proposal = o.result or {}
            keep = [f for f in (m.flags or []) if f == "singleton"]
            m.flags = sorted(set(o.flags or []) | set(keep))
            if m.status_by == "auto":
                m.status = auto_status(m.flags)
        m.updated_at = now
        if job_id:
            m.last_job_id = job_id
        return m

    def save_job_results(self, job_id: str, outcomes: Sequence[ItemOutcome]) -> None:
        """Store one chunk of results and the proposals they make, in one transaction (few queries)."""
        with self.session() as s, s.begin(), s.no_autoflush:
            done = failed = 0
            touched = _Touched()
            now = utcnow()
            items = {
                it.id: it
                for it in s.scalars(select(JobItem).where(JobItem.id.in_([o.item_id for o in outcomes])))
            }
            keys = {
                it.id: MappingKey.of(it.data_source, it.exam_code, it.exam_name).digest
                for it in items.values()
            }
            existing = {
                m.key_hash: m
                for m in s.scalars(select(Mapping).where(Mapping.key_hash.in_(set(keys.values()))))
            }
            linked: list[tuple[JobItem, Mapping]] = []
            for o in outcomes:
                item = items.get(o.item_id)
                if item is None or item.done:
                    continue
                item.done = True
                item.result = o.result
                item.error = o.error
                item.remembered = o.remembered
                if o.error:
                    failed += 1
                elif o.remembered:
                    item.mapping_id = o.mapping_id
                else:
                    key = keys[item.id]
                    m = self._upsert_proposal(s, existing.get(key), item.query(), o, job_id, touched, now)
                    existing[key] = m
                    linked.append((item, m))
                done += 1
            s.flush()
            for item, m in linked:
                item.mapping_id = m.id
                touched.ids.add(m.id)
            s.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(processed=Job.processed + done, failed=Job.failed + failed)
            )
            s.flush()
            self._refresh_singletons(s, touched)

    def mappings_by_keys(self, keys: Iterable[MappingKey]) -> dict[str, Mapping]:
        """Mappings for many inputs in one query, keyed by :attr:`MappingKey.digest`."""
        digests = {k.digest for k in keys}
        with self.session() as s:
            return {m.key_hash: m for m in s.scalars(select(Mapping).where(Mapping.key_hash.in_(digests)))}

    def _refresh_singletons(self, s: Session, touched: _Touched) -> None:
        """Flag mappings that are the only local name pointing at their catalogue row.

        Only rows whose catalogue target was touched are recounted, so a chunk costs O(chunk).
        """
        if not touched.targets and not touched.ids:
            return
        enabled = self.flag_singletons
        counts = dict(
            s.execute(
                select(Mapping.target_name, func.count())
                .where(Mapping.target_name.in_(touched.targets), Mapping.status != "no_match")
                .group_by(Mapping.target_name)
            ).all()
        )
        scope = or_(Mapping.target_name.in_(touched.targets), Mapping.id.in_(touched.ids))
        rows = s.execute(
            select(Mapping.id, Mapping.target_name, Mapping.flags, Mapping.status_by).where(scope)
        ).all()
        for mid, target, flags, status_by in rows:
            flags = list(flags or [])
            single = enabled and target is not None and counts.get(target, 0) == 1
            if single == ("singleton" in flags):
                continue
            flags = sorted(set(flags) | {"singleton"}) if single else [f for f in flags if f != "singleton"]
            values: dict[str, Any] = {"flags": flags}
            if status_by == "auto":
                values["status"] = auto_status(flags)
            s.execute(update(Mapping).where(Mapping.id == mid).values(**values))

    def decide(
        self,
        mapping_id: int,
        *,
        action: str,
        status: str,
        reviewer: str,
        comment: str | None,
        target: Target | None,
        keep_target: bool,
        equivalence: str | None,
        reproposal: tuple[Target | None, float, list[str], dict[str, Any]] | None = None,
    ) -> Mapping | None:
        """Apply one reviewer action and append it to the decisions log."""
        with self.session() as s, s.begin():
            m = s.get(Mapping, mapping_id)
            if m is None:
                return None
            previous = m.target_name
            now = utcnow()
            if action == "reject" and previous and previous not in (m.rejected_targets or []):
                m.rejected_targets = [*(m.rejected_targets or []), previous]
            if not keep_target:
                self._set_target(m, target)
                if target is not None and target.name in (m.rejected_targets or []):
                    # an explicit human choice overrides an earlier rejection of the same row
                    m.rejected_targets = [t for t in m.rejected_targets if t != target.name]
            if reproposal is not None:
                new_target, conf, flags, proposal = reproposal
                self._set_target(m, new_target)
                m.confidence = conf
                m.proposal = proposal
                m.flags = sorted(set(flags))
            if action == "reset":
                m.status_by = "auto"
                m.status = auto_status(m.flags or [])
            else:
                m.status_by = "human"
                m.status = status
            m.reviewer = reviewer
            m.decided_at = now
            m.comment = comment
            m.equivalence = equivalence if status == "approved" else None
            m.updated_at = now
            s.add(
                Decision(
                    mapping_id=m.id,
                    action=action,
                    status=m.status,
                    target_name=m.target_name,
                    previous_target=previous,
                    equivalence=m.equivalence,
                    confidence=m.confidence,
                    reviewer=reviewer,
                    comment=comment,
                    created_at=now,
                )
            )
            s.flush()
            self._refresh_singletons(s, _Touched({t for t in (previous, m.target_name) if t}, {m.id}))
            return m

    def bulk_approve(
        self,
        threshold: float,
        reviewer: str,
        data_source: str | None,
        comment: str | None,
        include_flagged: bool,
    ) -> int:
        """Approve undecided proposals at or above *threshold*; human decisions are never touched.

        Auto-flagged proposals are skipped unless *include_flagged*; soft flags (``singleton``) alone
        do not block approval.
        """
        with self.session() as s, s.begin():
            stmt = select(Mapping).where(
                Mapping.status_by == "auto",
                Mapping.status.in_(("unreviewed", "flagged")),
                Mapping.target_name.is_not(None),
                Mapping.confidence >= threshold,
            )
            if data_source:
                stmt = stmt.where(Mapping.data_source == data_source)
            now = utcnow()
            note = comment or f"bulk-approved at confidence >= {threshold:g}"
            count = 0
            for m in s.scalars(stmt):
                if not include_flagged and blocking_flags(m.flags or []):
                    continue
                m.status, m.status_by, m.reviewer, m.decided_at = "approved", "human", reviewer, now
                m.comment, m.equivalence, m.updated_at = note, "equivalent", now
                s.add(
                    Decision(
                        mapping_id=m.id,
                        action="bulk_approve",
                        status="approved",
                        target_name=m.target_name,
                        previous_target=m.target_name,
                        equivalence="equivalent",
                        confidence=m.confidence,
                        reviewer=reviewer,
                        comment=note,
                        created_at=now,
                    )
                )
                count += 1
            return count

    # ----------------------------------------------------------------- views
    @staticmethod
    def _filtered(stmt, f: QueueFilter):  # noqa: ANN001, ANN205 - SQLAlchemy Select in, Select out
        if f.status == "needs_review":
            stmt = stmt.where(Mapping.status.in_(sorted(NEEDS_REVIEW)))
        elif f.status and f.status != "all":
            stmt = stmt.where(Mapping.status == f.status)
        if f.data_source:
            stmt = stmt.where(Mapping.data_source == f.data_source)
        if f.modality:
            stmt = stmt.where(Mapping.modality_code == f.modality)
        if f.band in BANDS:
            low, high = BANDS[f.band]
            stmt = stmt.where(Mapping.confidence >= low, Mapping.confidence < high)
        if f.text:
            stmt = stmt.where(Mapping.exam_name.ilike(f"%{f.text}%"))
        if f.flag:
            stmt = stmt.where(cast(Mapping.flags, String).like(f'%"{f.flag}"%'))
        return stmt

    @staticmethod
    def _priority():  # noqa: ANN205
        return case(STATUS_PRIORITY, value=Mapping.status, else_=9)

    def queue(self, f: QueueFilter, offset: int = 0, limit: int = 50) -> tuple[list[Mapping], int]:
        """Mappings in review priority: flags first, then lowest confidence."""
        with self.session() as s:
            total = s.scalar(self._filtered(select(func.count()).select_from(Mapping), f)) or 0
            stmt = self._filtered(select(Mapping), f).order_by(
                self._priority(), func.coalesce(Mapping.confidence, -1.0), Mapping.id
            )
            return list(s.scalars(stmt.offset(offset).limit(limit))), total

    def queue_ids(self, f: QueueFilter) -> list[int]:
        with self.session() as s:
            stmt = self._filtered(select(Mapping.id), f).order_by(
                self._priority(), func.coalesce(Mapping.confidence, -1.0), Mapping.id
            )
            return list(s.scalars(stmt))

    def facets(self) -> dict[str, list[str]]:
        with self.session() as s:
            sources = [v for (v,) in s.execute(select(Mapping.data_source).distinct()) if v]
            modalities = [v for (v,) in s.execute(select(Mapping.modality_code).distinct()) if v]
        return {"data_sources": sorted(sources), "modalities": sorted(modalities)}

    def all_mappings(self, data_source: str | None = None, approved_only: bool = False) -> list[Mapping]:
        with self.session() as s:
            stmt = select(Mapping)
            if data_source:
                stmt = stmt.where(Mapping.data_source == data_source)
            if approved_only:
                stmt = stmt.where(Mapping.status.in_(("approved", "no_match")))
            stmt = stmt.order_by(Mapping.data_source, Mapping.exam_code, Mapping.exam_name)
            return list(s.scalars(stmt))

    def status_counts(self) -> list[tuple[str | None, str, int]]:
        with self.session() as s:
            stmt = select(Mapping.data_source, Mapping.status, func.count()).group_by(
                Mapping.data_source, Mapping.status
            )
            return [(ds, st, n) for ds, st, n in s.execute(stmt)]


@dataclass
class _Touched:
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
