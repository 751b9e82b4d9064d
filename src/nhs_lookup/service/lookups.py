"""Answering one exam with memory: approved/no-match decisions first, else the engine without rejected targets.

Shared by ``POST /lookup`` and the batch job runner so both give the same answer for the same input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from nhs_lookup import __version__
from nhs_lookup.records import CatalogueEntry, ExamQuery, LookupResult
from nhs_lookup.service.db import Mapping, Store, Target
from nhs_lookup.service.review import MappingKey, proposal_flags, top_margin
from nhs_lookup.service.settings import ReviewRules


class EngineLike(Protocol):
    """What the service needs from :class:`nhs_lookup.engine.LookupEngine`."""

    config: Any
    catalogue: Any

    def lookup(
        self, query: ExamQuery | str, *, modality_code: str | None = None, exclude=()
    ) -> LookupResult: ...  # noqa: ANN001

    def lookup_many(self, queries) -> list[LookupResult]: ...  # noqa: ANN001

    def search_catalogue(self, text: str, limit: int = 20) -> list[CatalogueEntry]: ...


@dataclass
class Answer:
    """A result payload (the engine's ``to_dict`` plus review information) and what it proposes."""

    payload: dict[str, Any]
    remembered: bool
    mapping_id: int | None = None
    target: Target | None = None
    confidence: float = 0.0
    flags: list[str] = field(default_factory=list)


def target_of(entry: CatalogueEntry) -> Target:
    return Target(
        name=entry.name,
        snomed_id=str(entry.snomed_id) if entry.snomed_id else None,
        fsn=entry.fsn,
        nicip_code=entry.nicip_code,
        laterality_id=str(entry.laterality_id) if entry.laterality_id else None,
        laterality=entry.laterality_fsn,
        modality=entry.components.modality,
    )


def engine_info(engine: EngineLike, catalogue_path: str | None) -> dict[str, Any]:
    """Versions and configuration recorded with every job (outputs say how they were made)."""
    config = getattr(engine, "config", None)
    entries = getattr(getattr(engine, "catalogue", None), "entries", [])
    return {
        "nhs_lookup_version": __version__,
        "catalogue_path": catalogue_path or getattr(config, "catalogue_path", None) or "bundled sample",
        "catalogue_rows": len(entries),
        "config": config.to_dict() if hasattr(config, "to_dict") else None,
    }


def proposal_payload(result: LookupResult, flags: list[str]) -> dict[str, Any]:
    """``result.to_dict()`` plus the parsed components of each candidate (for side-by-side review)."""
    data = result.to_dict()
    components: dict[str, Any] = {}
    for c in ([result.best] if result.best else []) + list(result.candidates):
        components.setdefault(c.entry.name, c.entry.components.to_dict())
    data["candidate_components"] = components
    margin = top_margin(result)
    data["top_margin"] = round(margin, 4) if margin is not None else None
    data["flags"] = flags
    return data


def review_info(m: Mapping | None, remembered: bool) -> dict[str, Any] | None:
    if m is None:
        return None
    return {
        "mapping_id": m.id,
        "status": m.status,
        "status_by": m.status_by,
        "reviewer": m.reviewer,
        "decided_at": m.decided_at,
        "comment": m.comment,
        "flags": list(m.flags or []),
        "rejected_targets": list(m.rejected_targets or []),
        "remembered": remembered,
    }


def remembered_payload(m: Mapping, query: ExamQuery) -> dict[str, Any]:
    """The reviewed answer for an input a human has already decided (approved or no-match)."""
    approved = m.status == "approved" and m.target_name is not None
    proposal = m.proposal or {}
    who = f"{m.reviewer} at {m.decided_at}"
    return {
        "data_source": query.data_source,
        "modality_code": query.modality_code,
        "exam_code": query.exam_code,
        "exam_name": query.exam_name,
        "matched": approved,
        "clean_name": m.target_name if approved else None,
        "nicip_code": m.target_nicip if approved else None,
        "snomed": {
            "found": approved,
            "id": m.target_snomed_id if approved else None,
            "fsn": m.target_fsn if approved else None,
            "laterality_concept_id": m.target_laterality_id if approved else None,
            "laterality_fsn": m.target_laterality if approved else None,
        },
        "confidence": 1.0,
        "ambiguous": False,
        "no_match_reason": None if approved else "reviewed_no_match",
        "explanation": (f"approved mapping by {who}" if approved else f"marked no-match by {who}"),
        "components": proposal.get("components", {}),
        "all_candidates": proposal.get("all_candidates", []) if approved else [],
        "provenance": {
            "source": "review",
            "mapping_id": m.id,
            "status": m.status,
            "reviewer": m.reviewer,
            "decided_at": m.decided_at,
            "comment": m.comment,
        },
    }


def is_remembered(m: Mapping | None) -> bool:
    return m is not None and m.status_by == "human" and m.status in ("approved", "no_match")


def _engine_answer(result: LookupResult, rules: ReviewRules) -> Answer:
    flags = proposal_flags(result, rules)
    return Answer(
        payload=proposal_payload(result, flags),
        remembered=False,
        target=target_of(result.best.entry) if result.best else None,
        confidence=float(result.confidence),
        flags=flags,
    )


def answer_one(
    engine: EngineLike, store: Store, rules: ReviewRules, query: ExamQuery
) -> tuple[Answer, Mapping | None]:
    """Answer one exam: a remembered decision, or the engine with that input's rejected targets excluded."""
    m = store.mapping_by_key(MappingKey.of(query.data_source, query.exam_code, query.exam_name))
    if is_remembered(m):
        assert m is not None
        payload = remembered_payload(m, query)
        return Answer(payload, True, mapping_id=m.id, confidence=1.0), m
    exclude = tuple(m.rejected_targets or ()) if m else ()
    answer = _engine_answer(engine.lookup(query, exclude=exclude), rules)
    answer.mapping_id = m.id if m else None
    return answer, m


def answer_batch(
    engine: EngineLike, store: Store, rules: ReviewRules, queries: Sequence[ExamQuery]
) -> list[tuple[Answer, Mapping | None]]:
    """:func:`answer_one` for many exams at once: one database query for their mappings, and the plain
    inputs through the engine's vectorised ``lookup_many``."""
    keys = [MappingKey.of(q.data_source, q.exam_code, q.exam_name) for q in queries]
    known = store.mappings_by_keys(keys)
    mappings = [known.get(k.digest) for k in keys]
    answers: list[Answer | None] = [None] * len(queries)
    plain: list[int] = []
    for i, (q, m) in enumerate(zip(queries, mappings, strict=True)):
        if is_remembered(m):
            assert m is not None
            answers[i] = Answer(remembered_payload(m, q), True, mapping_id=m.id, confidence=1.0)
        elif m is not None and m.rejected_targets:
            answers[i] = _engine_answer(engine.lookup(q, exclude=tuple(m.rejected_targets)), rules)
        else:
            plain.append(i)
    if plain:
        results = engine.lookup_many([queries[i] for i in plain])
        for i, result in zip(plain, results, strict=True):
            answers[i] = _engine_answer(result, rules)
    out = []
    for a, m in zip(answers, mappings, strict=True):
        assert a is not None
        if m is not None and a.mapping_id is None:
            a.mapping_id = m.id
        out.append((a, m))
    return out


def answer_many(
    engine: EngineLike, store: Store, rules: ReviewRules, queries: Sequence[ExamQuery]
) -> list[Answer]:
    """Batch form of :func:`answer_one` (the answers only)."""
    return [a for a, _ in answer_batch(engine, store, rules, queries)]
