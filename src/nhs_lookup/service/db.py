"""Persistence of the review service: one :class:`Store` whose methods are short transactions over the
tables in :mod:`nhs_lookup.service.models` (SQLite by default, any SQLAlchemy URL otherwise; engine
settings in :mod:`nhs_lookup.storage.engine`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import String, case, cast, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from nhs_lookup.records import ExamQuery
from nhs_lookup.service.models import (
    Base,
    Decision,
    ItemOutcome,
    Job,
    JobItem,
    Mapping,
    QueueFilter,
    Target,
    Touched,
    utcnow,
)
from nhs_lookup.service.review import (
    BANDS,
    NEEDS_REVIEW,
    STATUS_PRIORITY,
    MappingKey,
    auto_status,
    blocking_flags,
)
from nhs_lookup.storage.engine import make_engine

__all__ = [
    "Decision",
    "ItemOutcome",
    "Job",
    "JobItem",
    "Mapping",
    "QueueFilter",
    "Store",
    "Target",
    "utcnow",
]


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
        touched: Touched,
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
            touched = Touched()
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

    def _refresh_singletons(self, s: Session, touched: Touched) -> None:
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
            self._refresh_singletons(s, Touched({t for t in (previous, m.target_name) if t}, {m.id}))
            return m

    def bulk_approve(
        self,
        threshold: float,
        reviewer: str,
        data_source: str | None,
        comment: str | None,
        include_flagged: bool,
        dry_run: bool = False,
    ) -> int:
        """Approve undecided proposals at or above *threshold*; human decisions are never touched.

        Auto-flagged proposals are skipped unless *include_flagged*; soft flags (``singleton``) alone
        do not block approval. *dry_run* only counts them (the preview the web app confirms).
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
                if dry_run:
                    count += 1
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

    def proposal_counts(self) -> list[tuple[str | None, str, bool, int]]:
        """(data_source, status, has a proposed target, count): the upload summary's breakdown."""
        with self.session() as s:
            has_target = Mapping.target_name.is_not(None)
            stmt = select(Mapping.data_source, Mapping.status, has_target, func.count()).group_by(
                Mapping.data_source, Mapping.status, has_target
            )
            return [(ds, st, bool(t), n) for ds, st, t, n in s.execute(stmt)]

    def status_counts(self) -> list[tuple[str | None, str, int]]:
        with self.session() as s:
            stmt = select(Mapping.data_source, Mapping.status, func.count()).group_by(
                Mapping.data_source, Mapping.status
            )
            return [(ds, st, n) for ds, st, n in s.execute(stmt)]
