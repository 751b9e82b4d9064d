"""The model file: one versioned JSON document with everything ``fit`` learned, and the engine built
from it. ``lookup``, ``batch``, ``evaluate``, ``validate`` and ``serve`` load it with ``--model``.

The file records the catalogue it was fitted against (a content fingerprint of the rows); loading it
with another catalogue is refused unless forced, because learned words and calibration describe that
catalogue's rows.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nhs_lookup.catalogue import Catalogue
from nhs_lookup.config import LookupConfig, config_from_dict
from nhs_lookup.records import Case
from nhs_lookup.vocab import default_vocabulary

from .associations import Association, as_vocabulary
from .calibration import Calibration, CorrectnessModel, calibration_from_dict

FORMAT = "nhs-lookup-model"
FORMAT_VERSION = 2  # 2: the calibration may be a correctness model (logistic + isotonic)


class ModelError(ValueError):
    """A model file that cannot be used (unreadable, wrong format, other catalogue)."""


def catalogue_fingerprint(catalogue: Catalogue) -> str:
    """Content hash of the catalogue rows (name, SNOMED id, laterality), independent of file format
    and of the engine's code."""
    h = hashlib.sha256()
    for e in catalogue.entries:
        h.update(f"{e.name}\t{e.snomed_id or ''}\t{e.laterality_id or ''}\n".encode())
    return h.hexdigest()[:16]


def training_hash(cases: Iterable[Case]) -> str:
    """Hash of the labelled pairs a model was fitted on (order-independent)."""
    lines = sorted(
        json.dumps(
            [c.query.exam_name, c.query.modality_code, c.query.data_source, list(c.acceptable), c.no_match]
        )
        for c in cases
    )
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


@dataclass
class LookupModel:
    """What ``fit`` learned (see the module docstring)."""

    config: dict[str, Any]
    associations: list[Association]
    calibration: Calibration | None
    no_match_threshold: float
    catalogue: dict[str, Any]  # fingerprint, path, rows
    vocabulary_version: str
    training: dict[str, Any]  # hash, cases, files, review_decisions
    cv_metrics: dict[str, Any] = field(default_factory=dict)
    package_version: str = ""
    created_utc: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def extra_vocabulary(self) -> dict[str, str]:
        return as_vocabulary(self.associations)

    @property
    def auto_accept_threshold(self) -> float | None:
        """Calibrated confidence at or above which out-of-fold answers reached the target precision."""
        return getattr(self.calibration, "auto_accept_threshold", None)

    def engine_calibrator(self) -> Calibration | None:
        """The calibration as the engine uses it (a correctness model also needs the learned tokens)."""
        if isinstance(self.calibration, CorrectnessModel):
            return self.calibration.with_learned(self.extra_vocabulary)
        return self.calibration

    def lookup_config(self) -> LookupConfig:
        cfg = config_from_dict(copy.deepcopy(self.config))
        cfg.min_confidence = self.no_match_threshold
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "package_version": self.package_version,
            "created_utc": self.created_utc,
            "catalogue": self.catalogue,
            "vocabulary_version": self.vocabulary_version,
            "training": self.training,
            "config": self.config,
            "learned_vocabulary": [
                {"token": a.token, "phrase": a.phrase, "names": a.names, "support": a.support}
                for a in self.associations
            ],
            "calibration": self.calibration.to_dict() if self.calibration else None,
            "no_match_threshold": self.no_match_threshold,
            "auto_accept_threshold": self.auto_accept_threshold,
            "cv_metrics": self.cv_metrics,
            "notes": self.notes,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LookupModel:
        if data.get("format") != FORMAT:
            raise ModelError(f"not an nhs-lookup model file (format {data.get('format')!r})")
        if int(data.get("format_version", 0)) > FORMAT_VERSION:
            raise ModelError(
                f"model format version {data['format_version']} is newer than this package reads ({FORMAT_VERSION})"
            )
        try:
            assoc = [
                Association(
                    str(a["token"]), tuple(str(a["phrase"]).split()), int(a["names"]), int(a["support"])
                )
                for a in data.get("learned_vocabulary") or []
            ]
            cal = data.get("calibration")
            return cls(
                config=dict(data.get("config") or {}),
                associations=assoc,
                calibration=calibration_from_dict(cal) if cal else None,
                no_match_threshold=float(data["no_match_threshold"]),
                catalogue=dict(data["catalogue"]),
                vocabulary_version=str(data.get("vocabulary_version", "")),
                training=dict(data.get("training") or {}),
                cv_metrics=dict(data.get("cv_metrics") or {}),
                package_version=str(data.get("package_version", "")),
                created_utc=str(data.get("created_utc", "")),
                notes=list(data.get("notes") or []),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"malformed model file: {exc}") from exc

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return p


def load_model(path: str | Path) -> LookupModel:
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"model file not found: {p}")
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{p}: not a JSON model file ({exc})") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{p}: not a JSON model file")
    return LookupModel.from_dict(data)


def check_catalogue(model: LookupModel, catalogue: Catalogue, force: bool = False) -> list[str]:
    """Refuse a model fitted on another catalogue (unless *force*); returns warnings."""
    fp = catalogue_fingerprint(catalogue)
    want = model.catalogue.get("fingerprint")
    if want == fp:
        notes = []
    elif force:
        notes = [f"model was fitted on catalogue {want}, this one is {fp} (--force: loaded anyway)"]
    else:
        raise ModelError(
            f"the model was fitted on another catalogue ({model.catalogue.get('path')}, fingerprint {want}); "
            f"this catalogue ({catalogue.source_path}) has fingerprint {fp}. Refit it with `nhs-lookup fit`, "
            "or pass --force to load it anyway"
        )
    if model.vocabulary_version and model.vocabulary_version != default_vocabulary().fingerprint:
        notes.append("the bundled vocabulary changed since this model was fitted; consider refitting")
    return notes


def engine_with(base: Any, model: LookupModel, force: bool = False) -> Any:
    """A new engine sharing *base*'s catalogue and index, with the model's config, learned vocabulary,
    calibration and no-match threshold."""
    from nhs_lookup.engine import LookupEngine

    check_catalogue(model, base.catalogue, force)
    cfg = model.lookup_config()
    cfg.cache_dir = base.config.cache_dir
    cfg.catalogue_path = base.config.catalogue_path
    return LookupEngine(
        cfg,
        base.catalogue,
        base.index,
        extra_vocabulary=model.extra_vocabulary,
        calibrator=model.engine_calibrator(),
    )


def load_engine(
    model_path: str | Path,
    catalogue_path: str | Path | None = None,
    cache_dir: str | None = None,
    force: bool = False,
) -> tuple[Any, LookupModel]:
    """Engine from a model file. Catalogue: *catalogue_path*, else the one the model was fitted on."""
    from nhs_lookup.engine import LookupEngine

    model = load_model(model_path)
    cfg = model.lookup_config()
    cfg.cache_dir = cache_dir or cfg.cache_dir
    path = catalogue_path or model.catalogue.get("path") or None
    if path and not Path(path).is_file():
        raise ModelError(f"the model's catalogue {path} is not there; pass --catalogue")
    base = LookupEngine.load(cfg, catalogue_path=path)
    return engine_with(base, model, force), model


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
