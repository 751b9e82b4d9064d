"""Mapping-table exports (CSV, JSON, FHIR R4 ConceptMap), a job's results as CSV and per-source
summaries (pure functions; every CSV cell is formula-safe)."""

from __future__ import annotations

import io
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from nhs_lookup import __version__
from nhs_lookup.records import RESULT_COLUMNS, flag_cells, flatten_result
from nhs_lookup.service.review import NEEDS_REVIEW
from nhs_lookup.textfile import SafeDictWriter

SNOMED_URI = "http://snomed.info/sct"
LATERALITY_ATTRIBUTE = "http://snomed.info/id/272741003"  # SNOMED CT 'Laterality' attribute
LOCAL_SOURCE_PREFIX = "urn:nhs-lookup:ris:"
LOCAL_CATALOGUE_URI = "urn:nhs-lookup:catalogue"  # targets without a SNOMED CT id (e.g. RadLex lists)
RESULT_CSV_COLUMNS = ["row", *RESULT_COLUMNS, "remembered", "mapping_id", "error"]

if TYPE_CHECKING:
    from nhs_lookup.service.models import JobItem


@dataclass(frozen=True)
class ExportRow:
    """One mapping as exported."""

    data_source: str | None
    exam_code: str | None
    exam_name: str
    modality_code: str | None
    status: str
    target_name: str | None
    nicip_code: str | None
    snomed_id: str | None
    snomed_fsn: str | None
    laterality_id: str | None
    laterality: str | None
    equivalence: str | None
    confidence: float | None
    flags: tuple[str, ...]
    reviewer: str | None
    decided_at: str | None
    comment: str | None


# The shared per-exam columns (records.RESULT_COLUMNS), then what the review adds.
REVIEW_COLUMNS = ("nicip_code", "laterality_id", "equivalence", "reviewer", "decided_at", "comment")
CSV_COLUMNS = [*RESULT_COLUMNS, *REVIEW_COLUMNS]


def export_cells(r: ExportRow) -> dict[str, Any]:
    """One mapping under the shared column names (``proposed_name`` is the target row)."""
    return {
        "data_source": r.data_source,
        "modality_code": r.modality_code,
        "exam_code": r.exam_code,
        "exam_name": r.exam_name,
        "status": r.status,
        "proposed_name": r.target_name,
        "snomed_id": r.snomed_id,
        "snomed_fsn": r.snomed_fsn,
        "laterality_fsn": r.laterality,
        "confidence": r.confidence if r.target_name else None,
        **flag_cells(list(r.flags)),
        "needs_review": r.status in NEEDS_REVIEW,
        "no_match_reason": "reviewed as no match" if r.status == "no_match" else None,
        **{k: getattr(r, k) for k in REVIEW_COLUMNS},
    }


@dataclass(frozen=True)
class SourceSummary:
    data_source: str
    approved: int
    needs_review: int
    no_match: int
    total: int


@dataclass(frozen=True)
class ReviewSummary:
    """One source's rows for the upload page: what is decided, what the engine flagged, what it
    could not map (proposed no-matches), and what looks fine but nobody has checked yet."""

    data_source: str
    approved: int
    no_match: int  # reviewed as no match
    flagged: int  # auto- or hand-flagged, a proposed row
    unflagged: int  # undecided proposals with no blocking flag
    proposed_no_match: int  # undecided, the engine proposed no row
    other: int  # rejected / deferred
    total: int


def review_summary(counts: Iterable[tuple[str | None, str, bool, int]]) -> list[ReviewSummary]:
    """Per-source breakdown from ``Store.proposal_counts()`` (data_source, status, has_target, n)."""
    acc: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for source, status, has_target, n in counts:
        row = acc[source or "(none)"]
        if status in ("approved", "no_match"):
            row[status] += n
        elif status in ("unreviewed", "flagged") and not has_target:
            row["proposed_no_match"] += n
        elif status == "flagged":
            row["flagged"] += n
        elif status == "unreviewed":
            row["unflagged"] += n
        else:
            row["other"] += n
    fields = ("approved", "no_match", "flagged", "unflagged", "proposed_no_match", "other")
    return [ReviewSummary(k, *(v[f] for f in fields), sum(v.values())) for k, v in sorted(acc.items())]


def summarize(counts: Iterable[tuple[str | None, str, int]]) -> list[SourceSummary]:
    """Counts per data source from (data_source, status, count) triples; rejected/deferred need review."""
    acc: dict[str, dict[str, int]] = defaultdict(lambda: {"approved": 0, "needs_review": 0, "no_match": 0})
    for source, status, n in counts:
        key = source or "(none)"
        if status == "approved":
            acc[key]["approved"] += n
        elif status == "no_match":
            acc[key]["no_match"] += n
        elif status in NEEDS_REVIEW:
            acc[key]["needs_review"] += n
    return [
        SourceSummary(k, v["approved"], v["needs_review"], v["no_match"], sum(v.values()))
        for k, v in sorted(acc.items())
    ]


def to_csv(rows: Sequence[ExportRow]) -> str:
    buf = io.StringIO()
    writer = SafeDictWriter(buf, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for r in rows:
        d = export_cells(r)
        d["confidence"] = "" if d["confidence"] is None else f"{d['confidence']:.4f}"
        writer.writerow({k: "" if v is None else v for k, v in d.items()})
    return buf.getvalue()


def to_json(rows: Sequence[ExportRow], *, scope: str, generated_at: str, info: dict[str, Any]) -> str:
    summary = summarize(
        _triples(rows),
    )
    data = {
        "generated_at": generated_at,
        "generator": f"nhs-lookup {__version__}",
        "scope": scope,
        "engine": info,
        "summary": [asdict(s) for s in summary],
        "mappings": [{**export_cells(r), "flags": list(r.flags)} for r in rows],
    }
    return json.dumps(data, indent=2, ensure_ascii=False)


def _triples(rows: Sequence[ExportRow]) -> list[tuple[str | None, str, int]]:
    counts: dict[tuple[str | None, str], int] = defaultdict(int)
    for r in rows:
        counts[(r.data_source, r.status)] += 1
    return [(ds, st, n) for (ds, st), n in counts.items()]


def source_uri(data_source: str | None) -> str:
    """A URI naming a hospital's local code system (ConceptMap group.source)."""
    return LOCAL_SOURCE_PREFIX + quote(data_source or "unknown", safe="")


def _fhir_target(r: ExportRow) -> dict[str, Any]:
    if r.status == "no_match" or r.target_name is None:
        note = "reviewed: no catalogue procedure matches" if r.status == "no_match" else "no proposal"
        return {"equivalence": "unmatched", "comment": f"{note} (status {r.status})"}
    target: dict[str, Any] = {
        "code": r.snomed_id or r.target_name,
        "display": r.snomed_fsn or r.target_name,
    }
    if r.status == "approved":
        target["equivalence"] = r.equivalence or "equivalent"
        note = f"approved by {r.reviewer} at {r.decided_at}; catalogue name '{r.target_name}'"
    else:
        target["equivalence"] = "inexact"  # an unreviewed proposal: R4 requires a comment for inexact
        conf = "?" if r.confidence is None else f"{r.confidence:.2f}"
        note = f"status {r.status}, engine confidence {conf}; catalogue name '{r.target_name}'"
    if r.nicip_code:
        note += f"; NICIP {r.nicip_code}"
    target["comment"] = note
    if r.laterality_id:
        target["product"] = [
            {
                "property": LATERALITY_ATTRIBUTE,
                "system": SNOMED_URI,
                "value": r.laterality_id,
                **({"display": r.laterality} if r.laterality else {}),
            }
        ]
    return target


def to_fhir_concept_map(rows: Sequence[ExportRow], *, scope: str, generated_at: str) -> dict[str, Any]:
    """A FHIR R4 ConceptMap: one group per (data source, target system); local code -> SNOMED CT."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        system = SNOMED_URI if (r.snomed_id or r.target_name is None) else LOCAL_CATALOGUE_URI
        groups[(source_uri(r.data_source), system)].append(
            {
                "code": r.exam_code or r.exam_name,
                "display": r.exam_name,
                "target": [_fhir_target(r)],
            }
        )
    approved_only = scope == "approved"
    return {
        "resourceType": "ConceptMap",
        "id": f"nhs-lookup-{scope}",
        "url": f"urn:uuid:{uuid.uuid4()}",
        "version": generated_at,
        "name": "NhsLookupApprovedMappings" if approved_only else "NhsLookupAllMappings",
        "title": "Local radiology exam codes to the NHS imaging procedure catalogue"
        + (" (approved mappings)" if approved_only else " (all mappings with review status)"),
        "status": "active" if approved_only else "draft",
        "experimental": not approved_only,
        "date": generated_at,
        "publisher": f"nhs-lookup {__version__}",
        "description": "Exported by the nhs-lookup review service. Targets are SNOMED CT procedure concepts; "
        "laterality is given as a product of the SNOMED CT Laterality attribute.",
        "group": [
            {"source": src, "target": system, "element": elements}
            for (src, system), elements in sorted(groups.items())
        ],
    }


def job_results_csv(items: Iterable[JobItem]) -> Iterator[str]:
    """A job's results as CSV text in ~64 KiB pieces (streamed: a job may hold 100,000 rows)."""
    buf = io.StringIO()
    writer = SafeDictWriter(buf, fieldnames=RESULT_CSV_COLUMNS)
    writer.writeheader()
    for item in items:
        r = item.result or {}
        flat = flatten_result(r)
        # The job item holds the input as submitted (a remembered answer may lack it).
        flat.update(
            data_source=item.data_source or "",
            modality_code=item.modality_code or "",
            exam_code=item.exam_code or "",
            exam_name=item.exam_name,
        )
        writer.writerow(
            {
                "row": item.position,
                **flat,
                "remembered": item.remembered,
                "mapping_id": item.mapping_id or "",
                "error": item.error or ("" if item.done else "not processed yet"),
            }
        )
        if buf.tell() > 64 * 1024:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()
