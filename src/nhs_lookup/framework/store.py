"""SQL store for training sessions, checkpoints and per-case results (SQLAlchemy Core).

SQLite by default, any SQLAlchemy URL otherwise (engine settings: :mod:`nhs_lookup.storage.engine`).
A checkpoint and the results it covers are committed in ONE transaction, and
``(session_id, case_index)`` is unique, so a resumed run can neither lose nor duplicate a case.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    insert,
    select,
    update,
)

from nhs_lookup.storage.engine import add_sqlite_pragmas, database_url, make_engine

from .outcome import CaseOutcome

__all__ = ["TrainingStore", "SessionRow", "add_sqlite_pragmas", "make_engine", "metadata"]

metadata = MetaData()

sessions = Table(
    "training_sessions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("experiment_name", String(200), nullable=False, index=True),
    Column("status", String(20), nullable=False),  # running | completed | failed | interrupted
    Column("config_json", Text, nullable=False),
    Column("params_json", Text, nullable=False),  # datasets, fingerprint, chunking, split, ...
    Column("versions_json", Text, nullable=False),
    Column("started_at", DateTime, nullable=False),
    Column("ended_at", DateTime),
    Column("total_cases", Integer, nullable=False, default=0),
    Column("processed_cases", Integer, nullable=False, default=0),
    Column("error_count", Integer, nullable=False, default=0),
    Column("metrics_json", Text),
)

checkpoints = Table(
    "training_checkpoints",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", Integer, ForeignKey("training_sessions.id"), nullable=False, index=True),
    Column("checkpoint_number", Integer, nullable=False),
    Column("cases_processed", Integer, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("metrics_json", Text),
    UniqueConstraint("session_id", "checkpoint_number", name="uq_checkpoint"),
)

results = Table(
    "training_results",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", Integer, ForeignKey("training_sessions.id"), nullable=False),
    Column("case_index", Integer, nullable=False),
    Column("case_id", String(100)),
    Column("data_source", String(200)),
    Column("modality_code", String(50)),
    Column("exam_code", String(100)),
    Column("exam_name", Text, nullable=False),
    Column("expected_json", Text),  # JSON list of acceptable names, ["NO_MATCH"], or NULL (unlabelled)
    Column("predicted", Text),
    Column("snomed_id", String(50)),
    Column("modality", String(50)),
    Column("matched", Boolean, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("correct_rank", Integer),
    Column("no_match_reason", String(50)),
    Column("elapsed_ms", Float, nullable=False),
    Column("error", Text),
    Column("split", String(20), nullable=False),
    UniqueConstraint("session_id", "case_index", name="uq_result_case"),
)

file_errors = Table(
    "training_file_errors",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", Integer, ForeignKey("training_sessions.id"), nullable=False, index=True),
    Column("source", Text, nullable=False),
    Column("row", Integer, nullable=False),
    Column("message", Text, nullable=False),
    UniqueConstraint("session_id", "source", "row", name="uq_file_error"),
)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class SessionRow:
    id: int
    experiment_name: str
    status: str
    params: dict[str, Any]
    processed_cases: int
    total_cases: int
    started_at: datetime
    ended_at: datetime | None
    metrics: dict[str, Any] | None


def _row_to_session(row: Any) -> SessionRow:
    return SessionRow(
        id=row.id,
        experiment_name=row.experiment_name,
        status=row.status,
        params=json.loads(row.params_json),
        processed_cases=row.processed_cases,
        total_cases=row.total_cases,
        started_at=row.started_at,
        ended_at=row.ended_at,
        metrics=json.loads(row.metrics_json) if row.metrics_json else None,
    )


def _outcome_row(session_id: int, o: CaseOutcome) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "case_index": o.case_index,
        "case_id": o.case_id,
        "data_source": o.data_source,
        "modality_code": o.modality_code,
        "exam_code": o.exam_code,
        "exam_name": o.exam_name,
        "expected_json": o.expected_json(),
        "predicted": o.predicted,
        "snomed_id": o.snomed_id,
        "modality": o.modality,
        "matched": o.matched,
        "confidence": o.confidence,
        "correct_rank": o.correct_rank,
        "no_match_reason": o.no_match_reason,
        "elapsed_ms": o.elapsed_ms,
        "error": o.error,
        "split": o.split,
    }


class TrainingStore:
    """Sessions, checkpoints and results of ``nhs-lookup train``."""

    def __init__(self, db: str) -> None:
        self.url = database_url(db)
        self.engine = make_engine(db)
        metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- sessions ---------------------------------------------------------------------------
    def latest_session(self, experiment_name: str) -> SessionRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(sessions)
                .where(sessions.c.experiment_name == experiment_name)
                .order_by(sessions.c.id.desc())
                .limit(1)
            ).first()
        return _row_to_session(row) if row else None

    def get_session(self, session_id: int) -> SessionRow:
        with self.engine.connect() as conn:
            row = conn.execute(select(sessions).where(sessions.c.id == session_id)).one()
        return _row_to_session(row)

    def create_session(
        self,
        experiment_name: str,
        config: dict[str, Any],
        params: dict[str, Any],
        versions: dict[str, Any],
        total_cases: int,
    ) -> int:
        with self.engine.begin() as conn:
            res = conn.execute(
                insert(sessions).values(
                    experiment_name=experiment_name,
                    status="running",
                    config_json=json.dumps(config),
                    params_json=json.dumps(params),
                    versions_json=json.dumps(versions),
                    started_at=_now(),
                    total_cases=total_cases,
                    processed_cases=0,
                    error_count=0,
                )
            )
            return int(res.inserted_primary_key[0])

    def set_status(self, session_id: int, status: str, metrics: dict[str, Any] | None = None) -> None:
        values: dict[str, Any] = {"status": status}
        if status != "running":
            values["ended_at"] = _now()
        else:
            values["ended_at"] = None
        if metrics is not None:
            values["metrics_json"] = json.dumps(metrics)
        with self.engine.begin() as conn:
            conn.execute(update(sessions).where(sessions.c.id == session_id).values(**values))

    # -- checkpoints --------------------------------------------------------------------------
    def last_checkpoint(self, session_id: int) -> tuple[int, int]:
        """(checkpoint number, cases processed) of the last checkpoint, (0, 0) if none."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(checkpoints.c.checkpoint_number, checkpoints.c.cases_processed)
                .where(checkpoints.c.session_id == session_id)
                .order_by(checkpoints.c.checkpoint_number.desc())
                .limit(1)
            ).first()
        return (row[0], row[1]) if row else (0, 0)

    def commit_checkpoint(
        self,
        session_id: int,
        outcomes: Sequence[CaseOutcome],
        checkpoint_number: int,
        cases_processed: int,
        metrics: dict[str, Any],
    ) -> None:
        """Insert *outcomes* (one executemany) and the checkpoint row in a single transaction."""
        errors = sum(o.error is not None for o in outcomes)
        with self.engine.begin() as conn:
            if outcomes:
                conn.execute(insert(results), [_outcome_row(session_id, o) for o in outcomes])
            conn.execute(
                insert(checkpoints).values(
                    session_id=session_id,
                    checkpoint_number=checkpoint_number,
                    cases_processed=cases_processed,
                    created_at=_now(),
                    metrics_json=json.dumps(metrics),
                )
            )
            conn.execute(
                update(sessions)
                .where(sessions.c.id == session_id)
                .values(
                    processed_cases=cases_processed,
                    error_count=sessions.c.error_count + errors,
                )
            )

    def record_file_errors(self, session_id: int, errors: Sequence[Any]) -> None:
        """Store case-file rows that could not be read (replacing any stored by an earlier attempt)."""
        with self.engine.begin() as conn:
            conn.execute(file_errors.delete().where(file_errors.c.session_id == session_id))
            if errors:
                conn.execute(
                    insert(file_errors),
                    [
                        {"session_id": session_id, "source": e.source, "row": e.row, "message": e.message}
                        for e in errors
                    ],
                )

    # -- results ------------------------------------------------------------------------------
    def count_results(self, session_id: int) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(results).where(results.c.session_id == session_id)
                ).scalar_one()
            )

    def iter_outcomes(self, session_id: int, batch: int = 5000) -> Iterator[CaseOutcome]:
        """Stream a session's stored results in case order (memory bounded by *batch*)."""
        last = -1
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(results)
                    .where(results.c.session_id == session_id, results.c.case_index > last)
                    .order_by(results.c.case_index)
                    .limit(batch)
                ).all()
            if not rows:
                return
            for r in rows:
                yield CaseOutcome(
                    case_index=r.case_index,
                    exam_name=r.exam_name,
                    case_id=r.case_id,
                    data_source=r.data_source,
                    modality_code=r.modality_code,
                    exam_code=r.exam_code,
                    expected=tuple(json.loads(r.expected_json)) if r.expected_json else (),
                    predicted=r.predicted,
                    snomed_id=r.snomed_id,
                    modality=r.modality,
                    confidence=r.confidence,
                    correct_rank=r.correct_rank,
                    no_match_reason=r.no_match_reason,
                    elapsed_ms=r.elapsed_ms,
                    error=r.error,
                    split=r.split,
                )
            last = rows[-1].case_index
