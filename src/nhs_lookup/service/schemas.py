"""Request and response models of the HTTP API (Pydantic; they document themselves at ``/docs``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from nhs_lookup.cases import MAX_NAME_LENGTH
from nhs_lookup.textfile import has_visible_text

MAX_INT64 = 2**63 - 1  # largest id / offset a database integer holds
ActionName = Literal["approve", "choose", "reject", "no_match", "flag", "defer", "reset"]
EquivalenceName = Literal["equivalent", "equal", "wider", "subsumes", "narrower", "specializes", "inexact"]


def _strip(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


class ExamIn(BaseModel):
    """One exam as a RIS exports it (upper-case RIS keys such as ``EXAM_NAME`` are accepted too)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    exam_name: str = Field(
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        validation_alias=AliasChoices("exam_name", "EXAM_NAME"),
        examples=["CT Abdo/Pelvis C+"],
    )
    modality_code: str | None = Field(
        None, max_length=32, validation_alias=AliasChoices("modality_code", "MODALITY_CODE"), examples=["CT"]
    )
    exam_code: str | None = Field(
        None, max_length=64, validation_alias=AliasChoices("exam_code", "EXAM_CODE")
    )
    data_source: str | None = Field(
        None, max_length=128, validation_alias=AliasChoices("data_source", "DATA_SOURCE")
    )

    @field_validator("exam_name", "modality_code", "exam_code", "data_source", mode="before")
    @classmethod
    def _trim(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, str):
            raise ValueError("must be a string")
        return _strip(value)

    @field_validator("exam_name", mode="before")
    @classmethod
    def _not_blank(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not has_visible_text(value)):
            raise ValueError("must not be empty")
        return value


class LookupOut(BaseModel):
    """The engine's result (``LookupResult.to_dict()``), or the reviewed answer when one is remembered."""

    result: dict[str, Any]
    remembered: bool = Field(description="True when the answer comes from an earlier human decision")
    review: dict[str, Any] | None = Field(None, description="The mapping's review state, when it exists")


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    exams: list[ExamIn] = Field(min_length=1, description="The exams to look up (at most max_batch_items)")
    name: str | None = Field(None, max_length=255, description="A label for the job")


class RowError(BaseModel):
    row: int
    message: str


class JobOut(BaseModel):
    id: str
    name: str | None
    status: Literal["queued", "running", "done", "failed", "interrupted"]
    total: int
    processed: int
    failed: int
    progress: float
    row_errors: list[RowError]
    message: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    resumed_count: int
    engine: dict[str, Any]
    links: dict[str, str]


class JobItemOut(BaseModel):
    row: int
    data_source: str | None
    modality_code: str | None
    exam_code: str | None
    exam_name: str
    done: bool
    remembered: bool
    mapping_id: int | None
    error: str | None
    result: dict[str, Any] | None


class JobResultsOut(BaseModel):
    job_id: str
    status: str
    total: int
    offset: int
    limit: int
    items: list[JobItemOut]


class CatalogueEntryOut(BaseModel):
    name: str
    snomed_id: str | None
    fsn: str | None
    nicip_code: str | None
    laterality: str | None
    modality: str | None
    is_interventional: bool


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: ActionName = Field(
        description="approve the proposal; choose another target (target_name); reject the proposal "
        "(never proposed again for this input); no_match; flag; defer; reset (back to the engine's state)"
    )
    reviewer: str = Field(min_length=1, max_length=100)
    comment: str | None = Field(None, max_length=2000)
    target_name: str | None = Field(None, max_length=500, description="catalogue name, for action 'choose'")
    equivalence: EquivalenceName = "equivalent"

    @field_validator("reviewer", "comment", "target_name", mode="before")
    @classmethod
    def _trim(cls, value: Any) -> Any:
        return _strip(value)


class DecisionOut(BaseModel):
    id: int
    action: str
    status: str
    target_name: str | None
    previous_target: str | None
    equivalence: str | None
    confidence: float | None
    reviewer: str
    comment: str | None
    created_at: str


class MappingOut(BaseModel):
    id: int
    data_source: str | None
    exam_code: str | None
    exam_name: str
    modality_code: str | None
    status: str
    status_by: str
    target_name: str | None
    target_snomed_id: str | None
    target_fsn: str | None
    target_nicip: str | None
    target_laterality: str | None
    confidence: float | None
    band: str | None
    flags: list[str]
    rejected_targets: list[str]
    equivalence: str | None
    reviewer: str | None
    decided_at: str | None
    comment: str | None
    updated_at: str


class MappingDetailOut(MappingOut):
    proposal: dict[str, Any] | None
    history: list[DecisionOut]
    next_id: int | None = None


class MappingPage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[MappingOut]


class BulkApproveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(ge=0.0, le=1.0, description="approve proposals with confidence >= threshold")
    reviewer: str = Field(min_length=1, max_length=100)
    data_source: str | None = Field(None, max_length=128)
    include_flagged: bool = Field(
        False, description="also approve auto-flagged proposals above the threshold"
    )
    comment: str | None = Field(None, max_length=2000)
    dry_run: bool = Field(False, description="only count what would be approved (nothing changes)")


class BulkApproveOut(BaseModel):
    approved: int  # with dry_run: how many would be approved
    threshold: float
    data_source: str | None
    dry_run: bool = False


class SummaryOut(BaseModel):
    data_source: str
    approved: int
    needs_review: int
    no_match: int
    total: int


class ConsolidatedName(BaseModel):
    mapping_id: int
    data_source: str | None
    exam_code: str | None
    exam_name: str
    status: str
    confidence: float | None


class ConsolidatedRow(BaseModel):
    target_name: str
    snomed_id: str | None
    nicip_code: str | None
    count: int
    sources: list[str]
    names: list[ConsolidatedName]


class InconsistentName(BaseModel):
    exam_name: str
    targets: dict[str, list[str]] = Field(description="catalogue name -> data sources mapping it there")


class ConsolidatedOut(BaseModel):
    rows: list[ConsolidatedRow]
    inconsistent: list[InconsistentName]
