"""Fine-tune (or train from scratch) the quality network (``echoquality train``): the wiring.

Pipeline: annotations CSV -> probe/cache every clip (unreadable files reported and dropped)
-> patient-grouped stratified split -> DataLoaders (augmentation on the training split only)
-> BCEWithLogits (pos_weight) + Adam + plateau/cosine schedule, gradient clipping, AMP on CUDA
only, early stopping on the validation loss -> ``best_model.pt`` (a plain state_dict that
``echoquality infer --weights`` loads) and ``last.pt`` (everything needed for ``--resume``).
Under ``torchrun`` (WORLD_SIZE > 1) the model is wrapped in DistributedDataParallel with a
DistributedSampler; rank 0 alone logs and writes files.

Each step lives in its own module: ``data``, ``finetune``, ``loop``, ``checkpoint``,
``callbacks``, ``tracking``, ``distributed``, ``report``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from echoquality.config import EchoConfig, TrainConfig
from echoquality.evaluation.metrics import MetricsReport
from echoquality.training.callbacks import EarlyStopping
from echoquality.training.checkpoint import CheckpointPaths, RunState, restore_last
from echoquality.training.data import load_training_data
from echoquality.training.dataset import SkippedFile
from echoquality.training.distributed import init_distributed, shutdown, training_device, wrap_model
from echoquality.training.errors import TrainError
from echoquality.training.finetune import build_network
from echoquality.training.loop import Trainer, make_optimisation
from echoquality.training.report import finish_outputs, run_params, write_config, write_weights_note
from echoquality.training.tracking import NullTracker, make_tracker

__all__ = ["TrainError", "TrainResult", "train"]


@dataclass
class TrainResult:
    output_dir: Path
    best_model: Path
    best_epoch: int
    epochs_run: int  # last epoch completed (counts across --resume)
    history: list[dict[str, float]]
    test: MetricsReport | None
    split_sizes: dict[str, int]
    skipped: list[SkippedFile] = field(default_factory=list)
    mlflow_run_id: str | None = None


def _check_options(tc: TrainConfig) -> None:
    if tc.epochs < 1 or tc.batch_size < 1:
        raise TrainError("--epochs and --batch-size must be >= 1")
    if tc.scheduler not in ("plateau", "cosine"):
        raise TrainError(f"unknown scheduler {tc.scheduler!r}; use plateau or cosine")


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _quiet(*_args: Any, **_kwargs: Any) -> None:
    """The log function of ranks other than 0."""


def train(cfg: EchoConfig, *, resume: bool = False, force: bool = False, log: Any = print) -> TrainResult:
    """Run a training job described by ``cfg.train`` (and ``cfg.preprocess``); see module docstring."""
    tc = cfg.train
    out = Path(tc.output_dir)
    dist = init_distributed(tc.device)
    device = training_device(tc.device, dist)
    say = log if dist.main else _quiet
    paths = CheckpointPaths(out)
    paths.check_start(resume, force)
    _check_options(tc)
    out.mkdir(parents=True, exist_ok=True)
    _seed_everything(tc.seed)

    data = load_training_data(cfg, out, dist, device, resume, say)
    network = build_network(tc.architecture, tc.weights, tuple(tc.trainable_layers), say)
    network.model.to(device)
    net = wrap_model(network.model, device, dist)
    optim = make_optimisation(network.model, tc, device, data.train_labels)
    state = RunState(stopper=EarlyStopping(tc.early_stopping_patience, tc.min_delta))
    if resume:
        state = restore_last(
            paths.last, network.model, optim, device, tc.early_stopping_patience, tc.min_delta
        )
        say(
            f"resuming from {paths.last} after epoch {state.epoch} (best epoch {state.stopper.best_epoch}, "
            f"val loss {state.stopper.best_loss:.4f})"
        )
    start_epoch = state.epoch

    tracker: Any = NullTracker()
    if dist.main:
        tracker = make_tracker(
            tc.mlflow,
            tc.experiment_name,
            run_name=f"train {tc.architecture} {'fine-tune ' + ','.join(tc.trainable_layers) if tc.weights else 'from scratch'} -> {out}",
            tracking_uri=tc.tracking_uri,
            run_id=state.mlflow_run_id,
        )
    params = run_params(tc, network, optim, device, dist.world_size, data.sizes, len(data.skipped))
    if not resume:
        tracker.log_params(params)
    if dist.main:
        write_config(out, cfg)
    sizes = data.sizes
    say(
        f"{network.architecture}: {network.n_trainable:,}/{network.n_total:,} trainable parameters "
        f"({network.trainable_names.replace(',', ', ')}); "
        f"clips train {sizes['train']} / val {sizes['val']} / test {sizes['test']}; device {device}"
    )

    threshold = float(cfg.inference.threshold)
    trainer = Trainer(
        tc, net, network, data, optim, device, dist, paths, state, tracker, (0.5, threshold), say
    )
    status = "FAILED"
    try:
        trainer.fit()
        test = trainer.test()
        if dist.main:
            write_weights_note(paths.best, network.architecture, tc.annotations, data.kept)
            finish_outputs(
                out,
                params,
                state.history,
                state.stopper.best_epoch,
                test,
                len(data.skipped),
                sizes,
                threshold,
                tracker,
            )
        status = "FINISHED"
    finally:
        tracker.end(status)
        shutdown(dist)
    return TrainResult(
        output_dir=out,
        best_model=paths.best,
        best_epoch=state.stopper.best_epoch,
        epochs_run=state.history[-1]["epoch"] if state.history else start_epoch,
        history=state.history,
        test=test.report,
        split_sizes=sizes,
        skipped=data.skipped,
        mlflow_run_id=tracker.run_id,
    )
