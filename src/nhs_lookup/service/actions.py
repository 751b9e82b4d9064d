"""Domain actions of the review service, kept out of the route functions: a mapping's detail with its
place in the queue, a reviewer's decision (with a new proposal after a rejection), export rows and
documents, and the consolidated view (local names grouped by catalogue row).
"""

from __future__ import annotations

import json
from collections import defaultdict

from nhs_lookup.records import ExamQuery
from nhs_lookup.service import exports
from nhs_lookup.service.db import Mapping, QueueFilter, utcnow
from nhs_lookup.service.deps import ServiceContext
from nhs_lookup.service.errors import ApiError
from nhs_lookup.service.lookups import proposal_flags, proposal_payload, target_of
from nhs_lookup.service.review import ACTION_STATUS, MappingKey
from nhs_lookup.service.schemas import (
    ConsolidatedName,
    ConsolidatedOut,
    ConsolidatedRow,
    DecisionIn,
    InconsistentName,
    MappingDetailOut,
)
from nhs_lookup.service.views import decision_out, mapping_out


def mapping_detail(ctx: ServiceContext, m: Mapping, f: QueueFilter) -> MappingDetailOut:
    ids = ctx.store.queue_ids(f)
    next_id = None
    if m.id in ids:
        i = ids.index(m.id)
        next_id = ids[i + 1] if i + 1 < len(ids) else None
    elif ids:
        next_id = ids[0]
    return MappingDetailOut(
        **mapping_out(m).model_dump(),
        proposal=m.proposal,
        history=[decision_out(d) for d in ctx.store.decisions(m.id)],
        next_id=next_id,
    )


def apply_decision(ctx: ServiceContext, m: Mapping, body: DecisionIn) -> None:
    """Validate and store one reviewer action (see :class:`DecisionIn`)."""
    action = body.action
    status = ACTION_STATUS[action]
    target = None
    keep_target = True
    reproposal = None
    if action == "approve" and not m.target_name:
        raise ApiError(409, "nothing to approve: the engine proposed no target; choose one or mark no_match")
    if action == "choose":
        if not body.target_name:
            raise ApiError(422, "action 'choose' needs target_name (a catalogue name)")
        entry = ctx.engine.catalogue.by_name(body.target_name)
        if entry is None:
            raise ApiError(422, f"'{body.target_name}' is not a catalogue name")
        target, keep_target = target_of(entry), False
    if action == "reject":
        if not m.target_name:
            raise ApiError(409, "nothing to reject: the mapping has no target")
        exclude = tuple(dict.fromkeys([*(m.rejected_targets or []), m.target_name]))
        query = ExamQuery(m.exam_name, m.modality_code, m.exam_code, m.data_source)
        result = ctx.engine.lookup(query, exclude=exclude)
        flags = proposal_flags(result, ctx.settings.review)
        reproposal = (
            target_of(result.best.entry) if result.best else None,
            float(result.confidence),
            flags,
            proposal_payload(result, flags),
        )
    ctx.store.decide(
        m.id,
        action=action,
        status=status,
        reviewer=body.reviewer,
        comment=body.comment,
        target=target,
        keep_target=keep_target,
        equivalence=body.equivalence,
        reproposal=reproposal,
    )


def export_row(m: Mapping) -> exports.ExportRow:
    return exports.ExportRow(
        data_source=m.data_source,
        exam_code=m.exam_code,
        exam_name=m.exam_name,
        modality_code=m.modality_code,
        status=m.status,
        target_name=m.target_name if m.status != "no_match" else None,
        nicip_code=m.target_nicip if m.status != "no_match" else None,
        snomed_id=m.target_snomed_id if m.status != "no_match" else None,
        snomed_fsn=m.target_fsn if m.status != "no_match" else None,
        laterality_id=m.target_laterality_id if m.status != "no_match" else None,
        laterality=m.target_laterality if m.status != "no_match" else None,
        equivalence=m.equivalence,
        confidence=m.confidence,
        flags=tuple(m.flags or ()),
        reviewer=m.reviewer,
        decided_at=m.decided_at,
        comment=m.comment,
    )


def build_consolidated(mappings: list[Mapping]) -> ConsolidatedOut:
    """Group local names by catalogue row; list names that different sources map differently."""
    groups: dict[str, list[Mapping]] = defaultdict(list)
    by_name: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    shown: dict[str, str] = {}
    for m in mappings:
        if m.target_name is None or m.status == "no_match":
            continue
        groups[m.target_name].append(m)
        key = MappingKey.of(None, None, m.exam_name).exam_name
        shown.setdefault(key, m.exam_name)
        by_name[key][m.target_name].add(m.data_source or "(none)")
    rows = [
        ConsolidatedRow(
            target_name=target,
            snomed_id=ms[0].target_snomed_id,
            nicip_code=ms[0].target_nicip,
            count=len(ms),
            sources=sorted({m.data_source or "(none)" for m in ms}),
            names=[
                ConsolidatedName(
                    mapping_id=m.id,
                    data_source=m.data_source,
                    exam_code=m.exam_code,
                    exam_name=m.exam_name,
                    status=m.status,
                    confidence=m.confidence,
                )
                for m in sorted(ms, key=lambda m: (m.data_source or "", m.exam_name))
            ],
        )
        for target, ms in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    ]
    inconsistent = [
        InconsistentName(exam_name=shown[name], targets={t: sorted(s) for t, s in sorted(targets.items())})
        for name, targets in sorted(by_name.items())
        if len(targets) > 1
    ]
    return ConsolidatedOut(rows=rows, inconsistent=inconsistent)


def export_document(
    ctx: ServiceContext, fmt: str, scope: str, data_source: str | None
) -> tuple[str, str, str]:
    """The mapping table as (body, media type, file name): approved-only (approved + reviewed no-match)
    or all mappings with their status; CSV, JSON or a FHIR R4 ConceptMap."""
    approved = scope == "approved"
    rows = [export_row(m) for m in ctx.store.all_mappings(data_source, approved_only=approved)]
    if approved:
        rows = [r for r in rows if r.status in ("approved", "no_match")]
    now = utcnow()
    stem = f"nhs_lookup_mappings_{scope}"
    if fmt == "csv":
        return exports.to_csv(rows), "text/csv; charset=utf-8", f"{stem}.csv"
    if fmt == "json":
        return (
            exports.to_json(rows, scope=scope, generated_at=now, info=ctx.info),
            "application/json",
            f"{stem}.json",
        )
    concept_map = exports.to_fhir_concept_map(rows, scope=scope, generated_at=now)
    return (
        json.dumps(concept_map, indent=2, ensure_ascii=False),
        "application/fhir+json",
        f"{stem}.conceptmap.json",
    )
