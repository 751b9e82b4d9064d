"""Training clips: annotations CSV -> preprocessed uint8 clips (cached on disk) -> model tensors.

Preprocessing is the inference code itself (``preprocess.load_clip`` + ``normalize_clip``),
so the network is trained on exactly what it will see when scoring. The uint8 clip after
masking/cropping/resizing is cached as ``.npy`` keyed by the file's content hash and the
preprocessing config, so later epochs (and later runs) never decode DICOM again.
Augmentation happens on that uint8 clip, before normalisation. Unreadable files are
reported and dropped, never replaced by a blank clip that still carries a label.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from echoquality.config import AugmentConfig, PreprocessConfig
from echoquality.preprocess import load_clip, normalize_clip
from echoquality.training.augment import augment_clip


class AnnotationsError(Exception):
    """The annotations CSV is missing or malformed."""


@dataclass(frozen=True)
class ClipRecord:
    """One labelled training clip."""

    video_path: str  # as written in the CSV (the clip's id)
    path: Path  # resolved file on disk
    label: int  # 1 good, 0 poor
    group: str  # patient (split unit)
    machine_type: str
    label_source: str


@dataclass(frozen=True)
class SkippedFile:
    video_path: str
    path: str
    reason: str
    detail: str


def _label(value: str, where: str) -> int:
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise AnnotationsError(
            f"{where}: quality_score must be a number (1 good / 0 poor), got {value!r}"
        ) from exc
    return 1 if v >= 0.5 else 0


def read_annotations(csv_path: Path, data_root: Path | None = None) -> list[ClipRecord]:
    """Rows of ``echo_annotations.csv``; ``video_path`` is relative to *data_root* (default: the CSV's folder)."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise AnnotationsError(
            f"annotations file not found: {csv_path} (create it with `echoquality prepare-data`)"
        )
    root = Path(data_root) if data_root is not None else csv_path.parent
    out = []
    with csv_path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        cols = set(reader.fieldnames or [])
        if not {"video_path", "quality_score"} <= cols:
            raise AnnotationsError(
                f"{csv_path} needs columns video_path and quality_score (has {sorted(cols)})"
            )
        for line, row in enumerate(reader, start=2):
            vp = row["video_path"].strip()
            p = Path(vp)
            group = (row.get("patient_id") or "").strip() or (row.get("folder") or "").strip() or vp
            out.append(
                ClipRecord(
                    video_path=vp,
                    path=p if p.is_absolute() else root / p,
                    label=_label(row["quality_score"], f"{csv_path}:{line}"),
                    group=group,
                    machine_type=(row.get("machine_type") or "unknown").strip() or "unknown",
                    label_source=(row.get("label_source") or "pseudo").strip() or "pseudo",
                )
            )
    if not out:
        raise AnnotationsError(f"{csv_path} has no rows")
    return out


def config_hash(cfg: PreprocessConfig) -> str:
    """Short hash of everything that changes the uint8 clip."""
    text = json.dumps(dataclasses.asdict(cfg), sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def file_hash(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()[:20]


class ClipCache:
    """uint8 clips as ``<dir>/<file sha256>_<preprocess hash>.npy`` (written atomically)."""

    def __init__(self, directory: Path, cfg: PreprocessConfig) -> None:
        self.directory = Path(directory)
        self.cfg = cfg
        self.cfg_key = config_hash(cfg)

    def path_for(self, source: Path) -> Path:
        return self.directory / f"{file_hash(source)}_{self.cfg_key}.npy"

    def load_or_create(self, source: Path) -> tuple[Path, np.ndarray]:
        """Cached clip for *source*, decoding and storing it on a miss (SkipError if unusable)."""
        target = self.path_for(source)
        if target.is_file():
            try:
                return target, np.load(target)
            except (OSError, ValueError):
                target.unlink(missing_ok=True)  # a damaged cache entry is rebuilt
        _, clip = load_clip(source, self.cfg)
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, clip)
        os.replace(tmp, target)
        return target, clip


def probe_clips(
    records: list[ClipRecord], cfg: PreprocessConfig, cache: ClipCache | None
) -> tuple[list[ClipRecord], list[Path | None], list[SkippedFile]]:
    """Decode every clip once: keep the usable ones (filling the cache), report the rest.

    Returns (usable records, their cache paths or None without cache, skipped files).
    """
    from echoquality.dicom import SkipError

    kept, paths, skipped = [], [], []
    for r in records:
        try:
            if not r.path.is_file():
                raise FileNotFoundError(f"file not found: {r.path}")
            if cache is not None:
                p, _ = cache.load_or_create(r.path)
            else:
                load_clip(r.path, cfg)
                p = None
        except SkipError as exc:
            skipped.append(SkippedFile(r.video_path, str(r.path), exc.reason.value, exc.detail))
            continue
        except Exception as exc:  # any other failure drops the file, reported
            skipped.append(
                SkippedFile(r.video_path, str(r.path), "other_errors", f"{type(exc).__name__}: {exc}")
            )
            continue
        kept.append(r)
        paths.append(p)
    return kept, paths, skipped


class ClipDataset:
    """Map-style dataset of (float32 tensor (3, T, S, S), float label, index) for torch DataLoaders.

    With *augment* set, each clip gets a transform drawn from ``default_rng((seed, epoch, index))``:
    reproducible, different each epoch, independent of worker count and of resuming.
    """

    def __init__(
        self,
        records: list[ClipRecord],
        cache_paths: list[Path | None],
        cfg: PreprocessConfig,
        augment: AugmentConfig | None = None,
        seed: int = 0,
    ) -> None:
        if len(records) != len(cache_paths):
            raise ValueError("records and cache_paths differ in length")
        self.records = records
        self.cache_paths = cache_paths
        self.cfg = cfg
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def clip(self, index: int) -> np.ndarray:
        """The uint8 clip (from the cache when there is one, else decoded now)."""
        cp = self.cache_paths[index]
        if cp is not None:
            return np.load(cp)
        return load_clip(self.records[index].path, self.cfg)[1]

    def __getitem__(self, index: int):
        import torch

        clip = self.clip(index)
        if self.augment is not None:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            clip = augment_clip(clip, self.augment, rng)
        x = torch.from_numpy(normalize_clip(clip, self.cfg))
        y = torch.tensor(float(self.records[index].label))
        return x, y, index
