"""Labelled cases from the review app's decisions (the service database, read-only).

A mapping a person approved (with its target row) or marked as no match is a labelled case; automatic
statuses are not labels.
"""

from __future__ import annotations

from nhs_lookup.records import Case, ExamQuery


def _url(db: str) -> str:
    return db if "://" in db else f"sqlite:///{db}"


def review_cases(db: str) -> list[Case]:
    """Human-approved and human no-match mappings of the review database at *db* (URL or SQLite path)."""
    import sqlalchemy as sa

    url = _url(db)
    if url.startswith("sqlite:///"):
        from pathlib import Path

        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_file():
            raise FileNotFoundError(f"review database not found: {path}")
    engine = sa.create_engine(url)
    try:
        meta = sa.MetaData()
        try:
            table = sa.Table("mappings", meta, autoload_with=engine)
        except sa.exc.NoSuchTableError as exc:
            raise ValueError(f"{db}: no 'mappings' table (not a review-app database)") from exc
        stmt = (
            sa.select(table)
            .where(table.c.status_by == "human", table.c.status.in_(("approved", "no_match")))
            .order_by(table.c.id)
        )
        with engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
    finally:
        engine.dispose()
    out = []
    for r in rows:
        no_match = r["status"] == "no_match"
        if not no_match and not r["target_name"]:
            continue
        out.append(
            Case(
                query=ExamQuery(r["exam_name"], r["modality_code"], r["exam_code"], r["data_source"]),
                case_id=f"review-{r['id']}",
                acceptable=() if no_match else (r["target_name"],),
                no_match=no_match,
                no_match_reason="reviewed" if no_match else None,
            )
        )
    return out
