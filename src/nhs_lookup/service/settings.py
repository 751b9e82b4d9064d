"""Service settings: where the database and catalogue live, auth, upload limits and review rules.

The engine config file given to ``nhs-lookup serve --config`` may carry an extra ``review:`` section
(keys of :class:`ReviewRules`); everything else in it is the engine's :class:`LookupConfig`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nhs_lookup.config import LookupConfig, config_from_dict, read_yaml_mapping

DEFAULT_DB_URL = "sqlite:///nhs_lookup_service.db"
API_KEY_ENV = "NHS_LOOKUP_API_KEY"


@dataclass
class ReviewRules:
    """Auto-flag thresholds: a proposal that trips any enabled rule enters the queue as ``flagged``."""

    low_confidence_below: float = 0.7  # confidence below this -> low_confidence
    ambiguity_margin_below: float = 0.05  # top-1 minus top-2 score below this -> ambiguous
    flag_singletons: bool = True  # only local name mapped to its catalogue row -> singleton
    flag_modality_mismatch: bool = True  # RIS modality code disagrees with the target's modality
    bulk_approve_default: float = 0.9  # default threshold offered by the bulk-approve form


@dataclass
class ServiceSettings:
    """Everything ``create_app`` needs. Defaults are safe for a single coder on one machine."""

    db_url: str = DEFAULT_DB_URL
    catalogue_path: str | None = None  # None: the engine's default (bundled sample or $NHS_LOOKUP_CATALOGUE)
    config_path: str | None = None
    engine_config: LookupConfig | None = None  # set by load_settings from config_path
    api_key: str | None = None  # None: write endpoints are open (bind to 127.0.0.1!)
    max_upload_mb: float = 20.0
    max_batch_items: int = 100_000
    job_chunk_size: int = 50  # items looked up and committed per transaction in a batch job
    resume_jobs: bool = True  # resume interrupted jobs at start-up; False marks them 'interrupted'
    lookup_workers: int = 0  # >0: lookups run in this many forked worker processes (uses more cores)
    batch_lookups: bool = True  # answer concurrent /lookup requests with one engine call per batch
    review: ReviewRules = field(default_factory=ReviewRules)
    host: str = "127.0.0.1"  # the bound address: accepted in the Host header (DNS-rebinding check)
    allowed_hosts: tuple[str, ...] = ()  # further names clients use to reach the server ('*': any)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def describe(self) -> dict[str, Any]:
        """Settings safe to show (the API key is never echoed)."""
        data = {
            "db_url": self.db_url,
            "catalogue_path": self.catalogue_path,
            "config_path": self.config_path,
            "api_key_required": bool(self.api_key),
            "max_upload_mb": self.max_upload_mb,
            "max_batch_items": self.max_batch_items,
            "job_chunk_size": self.job_chunk_size,
            "lookup_workers": self.lookup_workers,
            "batch_lookups": self.batch_lookups,
            "resume_jobs": self.resume_jobs,
            "host": self.host,
            "allowed_hosts": list(self.allowed_hosts),
            "review": dataclasses.asdict(self.review),
        }
        return data


def review_rules_from_dict(data: dict[str, Any] | None) -> ReviewRules:
    data = dict(data or {})
    allowed = {f.name for f in dataclasses.fields(ReviewRules)}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(
            f"unknown key(s) in review: {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
    return ReviewRules(**data)


def load_config_file(path: str | Path) -> tuple[LookupConfig, ReviewRules]:
    """Read an engine YAML config that may also hold a ``review:`` section."""
    data = read_yaml_mapping(path)
    review = review_rules_from_dict(data.pop("review", None))
    return config_from_dict(data), review
