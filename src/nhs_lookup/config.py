"""One typed configuration object for the lookup engine, loaded from YAML with defaults in code.

Scoring keys and defaults follow the seed engine's ``config.yaml`` so that existing configs
(and ``optimized_config.yaml`` written by ``nhs-lookup optimize``) load unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from radqc_common.config import build_dataclass, read_yaml_mapping


@dataclass
class ComponentWeights:
    anatomy: float = 0.35
    modality: float = 0.25
    laterality: float = 0.15
    contrast: float = 0.15
    technique: float = 0.10


@dataclass
class FinalWeights:
    component: float = 0.55
    semantic: float = 0.35
    frequency: float = 0.10


def _default_modality_similarity() -> dict[str, dict[str, float]]:
    return {
        "CT": {"CECT": 0.9, "DECT": 0.8, "HRCT": 0.9},
        "MR": {"MRI": 1.0, "FMRI": 0.8},
        "XR": {"X-ray": 1.0, "X-Ray": 1.0, "Xray": 1.0},
        "US": {"Ultrasound": 1.0, "USS": 0.9},
        "Mamm": {"Mammography": 1.0, "Mammogram": 1.0},
        "NM": {"Nuclear Medicine": 1.0, "Scintigraphy": 0.8},
        "PET": {"PET/CT": 0.95, "PET-CT": 0.95},
    }


@dataclass
class ScoringConfig:
    """The tunable scoring parameters (what ``nhs-lookup optimize`` searches over)."""

    retriever_top_k: int = 25
    weights_component: ComponentWeights = field(default_factory=ComponentWeights)
    weights_final: FinalWeights = field(default_factory=FinalWeights)
    interventional_bonus: float = 0.15
    interventional_penalty: float = -0.20
    specificity_penalty_weight: float = 0.05
    exact_match_bonus: float = 0.25
    synonym_match_bonus: float = 0.15
    context_match_bonus: float = 0.10
    contrast_mismatch_score: float = 0.3
    contrast_null_score: float = 0.7
    # Labelling rules as soft costs: unstated contrast prefers the row without a contrast qualifier;
    # a stated side scores an unlateralised row at laterality_null_score.
    contrast_unstated_penalty: float = 0.2
    laterality_null_score: float = 0.7
    laterality_unstated_penalty: float = 0.08  # unstated side: cost of a Lt/Rt-only row
    # Procedure actions (insert, remove, biopsy, ...): a stated action shared with the row earns the
    # bonus; a row without the stated action pays action_missing_penalty; a name stating no action
    # pays action_unstated_penalty on a row that adds one. Conflicting actions are hard violations.
    action_match_bonus: float = 0.1
    action_missing_penalty: float = 0.1
    action_unstated_penalty: float = 0.06
    # The RIS modality code decides when the name states no modality: a row of a dissimilar modality
    # pays this (not a hard constraint: interventional RIS codes cover several guidance modalities).
    code_modality_penalty: float = 0.3
    # A stated study-defining technique (angiography, Doppler, arthrography...) that the row lacks.
    technique_missing_penalty: float = 0.1
    # A stated body part against a row of a disjoint body part (no shared or containing region).
    anatomy_mismatch_penalty: float = 0.15
    modality_similarity: dict[str, dict[str, float]] = field(default_factory=_default_modality_similarity)


@dataclass
class LookupConfig:
    """Top-level lookup-engine configuration."""

    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    # Catalogue file (NHS.json, a NICIP/SNOMED CSV or XLSX, or a RadLex-style JSON).
    # None: the bundled sample catalogue (or $NHS_LOOKUP_CATALOGUE when set).
    catalogue_path: str | None = None
    cache_dir: str | None = None  # None: ~/.cache/nhs_lookup (or $NHS_LOOKUP_CACHE)
    semantic_backend: str = "tfidf"  # tfidf (default, no model) | sentence-transformers
    semantic_model: str | None = None  # path or name for the sentence-transformers backend
    top_k_results: int = 5  # alternatives returned with each result
    ambiguity_margin: float = 0.05  # top-1 minus top-2 score below this -> ambiguous
    min_confidence: float = 0.35  # below this the engine returns an explicit no-match
    confident_threshold: float = 0.7  # "success rate" threshold in training reports

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def config_from_dict(data: dict[str, Any] | None) -> LookupConfig:
    """Build a config from a mapping. Accepts the seed layout where scoring keys sit under
    ``scoring:`` and ``modality_similarity:`` is a top-level section."""
    data = dict(data or {})
    scoring = dict(data.pop("scoring", {}) or {})
    if "modality_similarity" in data:
        scoring.setdefault("modality_similarity", data.pop("modality_similarity"))
    for ignored in ("metadata", "context_scoring", "preprocessing", "modality_similarity_threshold"):
        data.pop(ignored, None)
        scoring.pop(ignored, None)
    data["scoring"] = scoring
    return build_dataclass(LookupConfig, data, "config")


def load_config(path: str | Path | None = None) -> LookupConfig:
    """Load a YAML config; missing keys keep their defaults. ``None`` gives the defaults."""
    if path is None:
        return LookupConfig()
    return config_from_dict(read_yaml_mapping(path))


def save_config(config: LookupConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
