"""A training run's data: probe and cache every clip, split by patient, build the DataLoaders.

Unreadable files are reported (``skipped_files.json``) and dropped. The split is written to
``splits.csv`` and read back on ``--resume``. Augmentation applies to the training split only;
its sampler draws a fresh permutation per epoch from (seed, epoch), so resuming repeats it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from echoquality.config import EchoConfig
from echoquality.training.checkpoint import write_json
from echoquality.training.dataset import (
    ClipCache,
    ClipDataset,
    ClipRecord,
    SkippedFile,
    probe_clips,
    read_annotations,
)
from echoquality.training.distributed import Dist, barrier
from echoquality.training.errors import TrainError
from echoquality.training.split import SplitItem, grouped_stratified_split, read_splits, write_splits

SPLIT_NAMES = ("train", "val", "test")


class EpochPermutation:
    """Sampler: a fresh permutation per epoch from (seed, epoch) - identical after --resume."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(np.random.default_rng((self.seed, self.epoch)).permutation(self.n).tolist())

    def __len__(self) -> int:
        return self.n


def make_loader(dataset: Any, batch_size: int, workers: int, sampler: Any = None, pin: bool = False) -> Any:
    from torch.utils.data import DataLoader

    return DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, shuffle=False, num_workers=workers, pin_memory=pin
    )


@dataclass
class TrainData:
    """The usable clips, what was skipped, and one loader per split."""

    kept: list[ClipRecord]
    skipped: list[SkippedFile]
    sizes: dict[str, int]
    train_labels: np.ndarray
    train_set: ClipDataset
    sampler: Any
    train_loader: Any
    val_loader: Any
    test_loader: Any

    def set_epoch(self, epoch: int) -> None:
        """New shuffling and new augmentation draws for *epoch*."""
        self.sampler.set_epoch(epoch)
        self.train_set.set_epoch(epoch)


def probe_usable_clips(
    cfg: EchoConfig, out: Path, d: Dist, say: Any
) -> tuple[list[ClipRecord], list[Path | None], list[SkippedFile]]:
    """Decode every annotated clip once (rank 0 fills the cache first); report and drop the rest."""
    tc = cfg.train
    records = read_annotations(Path(tc.annotations), Path(tc.data_root) if tc.data_root else None)
    cache = ClipCache(Path(tc.cache_dir), cfg.preprocess) if tc.use_cache else None
    if cache is not None and not d.main:
        barrier(d)  # rank 0 fills the cache first
    kept, cache_paths, skipped = probe_clips(records, cfg.preprocess, cache)
    if cache is not None and d.main:
        barrier(d)
    if d.main:
        write_json(out / "skipped_files.json", [dataclasses.asdict(s) for s in skipped])
    for s in skipped:
        say(f"skipped {s.video_path}: {s.reason} - {s.detail}")
    if len(kept) < 2:
        raise TrainError(
            f"only {len(kept)} usable clip(s) of {len(records)}; see {out / 'skipped_files.json'}"
        )
    return kept, cache_paths, skipped


def assign_splits(
    kept: list[ClipRecord], cfg: EchoConfig, out: Path, d: Dist, resume: bool
) -> dict[str, list[int]]:
    """Indices of *kept* per split: from ``splits.csv`` on resume, else a new grouped split (written)."""
    tc = cfg.train
    split_file = out / "splits.csv"
    if resume and split_file.is_file():
        assignment = read_splits(split_file)
    else:
        assignment = grouped_stratified_split(
            [SplitItem(r.video_path, r.group, r.label) for r in kept], tuple(tc.split), tc.seed
        )
        if d.main:
            write_splits(
                split_file, [(r.video_path, r.group, r.label, assignment[r.video_path]) for r in kept]
            )
    idx = {s: [i for i, r in enumerate(kept) if assignment.get(r.video_path) == s] for s in SPLIT_NAMES}
    if not idx["train"]:
        raise TrainError("the training split is empty")
    return idx


def load_training_data(cfg: EchoConfig, out: Path, d: Dist, device: Any, resume: bool, say: Any) -> TrainData:
    """Probe, split and wrap the clips in DataLoaders (augmentation on the training split only)."""
    tc = cfg.train
    kept, cache_paths, skipped = probe_usable_clips(cfg, out, d, say)
    idx = assign_splits(kept, cfg, out, d, resume)

    def subset(name: str, augment: bool) -> ClipDataset:
        return ClipDataset(
            [kept[i] for i in idx[name]],
            [cache_paths[i] for i in idx[name]],
            cfg.preprocess,
            augment=tc.augment if augment else None,
            seed=tc.seed,
        )

    train_set = subset("train", tc.augmentation)
    if d.enabled:
        from torch.utils.data.distributed import DistributedSampler

        sampler: Any = DistributedSampler(
            train_set, num_replicas=d.world_size, rank=d.rank, shuffle=True, seed=tc.seed
        )
    else:
        sampler = EpochPermutation(len(train_set), tc.seed)
    pin = device.type == "cuda"
    return TrainData(
        kept=kept,
        skipped=skipped,
        sizes={s: len(v) for s, v in idx.items()},
        train_labels=np.array([kept[i].label for i in idx["train"]]),
        train_set=train_set,
        sampler=sampler,
        train_loader=make_loader(train_set, tc.batch_size, tc.num_workers, sampler, pin),
        val_loader=make_loader(subset("val", False), tc.batch_size, tc.num_workers, None, pin),
        test_loader=make_loader(subset("test", False), tc.batch_size, tc.num_workers, None, pin),
    )
