"""Database rows -> API response models (pure conversions, shared by the API routes and the web pages)."""

from __future__ import annotations

from nhs_lookup.records import CatalogueEntry
from nhs_lookup.service.db import Decision, Job, JobItem, Mapping
from nhs_lookup.service.review import band_of
from nhs_lookup.service.schemas import CatalogueEntryOut, DecisionOut, JobItemOut, JobOut, MappingOut


def job_out(job: Job) -> JobOut:
    return JobOut(
        id=job.id,
        name=job.name,
        status=job.status,  # type: ignore[arg-type]
        total=job.total,
        processed=job.processed,
        failed=job.failed,
        progress=round(job.processed / job.total, 4) if job.total else 1.0,
        row_errors=job.row_errors or [],
        message=job.message,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        resumed_count=job.resumed_count or 0,
        engine=job.engine_info or {},
        links={
            "self": f"/jobs/{job.id}",
            "results": f"/jobs/{job.id}/results",
            "csv": f"/jobs/{job.id}/results?format=csv",
        },
    )


def item_out(item: JobItem) -> JobItemOut:
    return JobItemOut(
        row=item.position,
        data_source=item.data_source,
        modality_code=item.modality_code,
        exam_code=item.exam_code,
        exam_name=item.exam_name,
        done=item.done,
        remembered=item.remembered,
        mapping_id=item.mapping_id,
        error=item.error,
        result=item.result,
    )


def mapping_out(m: Mapping) -> MappingOut:
    return MappingOut(
        id=m.id,
        data_source=m.data_source,
        exam_code=m.exam_code,
        exam_name=m.exam_name,
        modality_code=m.modality_code,
        status=m.status,
        status_by=m.status_by,
        target_name=m.target_name,
        target_snomed_id=m.target_snomed_id,
        target_fsn=m.target_fsn,
        target_nicip=m.target_nicip,
        target_laterality=m.target_laterality,
        confidence=m.confidence,
        band=band_of(m.confidence),
        flags=list(m.flags or []),
        rejected_targets=list(m.rejected_targets or []),
        equivalence=m.equivalence,
        reviewer=m.reviewer,
        decided_at=m.decided_at,
        comment=m.comment,
        updated_at=m.updated_at,
    )


def decision_out(d: Decision) -> DecisionOut:
    return DecisionOut(
        id=d.id,
        action=d.action,
        status=d.status,
        target_name=d.target_name,
        previous_target=d.previous_target,
        equivalence=d.equivalence,
        confidence=d.confidence,
        reviewer=d.reviewer,
        comment=d.comment,
        created_at=d.created_at,
    )


def catalogue_entry_out(e: CatalogueEntry) -> CatalogueEntryOut:
    return CatalogueEntryOut(
        name=e.name,
        snomed_id=str(e.snomed_id) if e.snomed_id else None,
        fsn=e.fsn,
        nicip_code=e.nicip_code,
        laterality=e.laterality_fsn,
        modality=e.components.modality,
        is_interventional=e.is_interventional,
    )
