"""Fine-tune (or train from scratch) the quality network (``echoquality train``).

Pipeline: annotations CSV -> probe/cache every clip (unreadable files reported and dropped)
-> patient-grouped stratified split -> DataLoaders (augmentation on the training split only)
-> BCEWithLogits (pos_weight) + Adam + plateau/cosine schedule, gradient clipping, AMP on CUDA
only, early stopping on the validation loss -> ``best_model.pt`` (a plain state_dict that
``echoquality infer --weights`` loads) and ``last.pt`` (everything needed for ``--resume``).
Under ``torchrun`` (WORLD_SIZE > 1) the model is wrapped in DistributedDataParallel with a
DistributedSampler; rank 0 alone logs and writes files.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from echoquality.config import EchoConfig
from echoquality.evaluation.metrics import MetricsReport, evaluate_predictions
from echoquality.provenance import package_versions
from echoquality.training.dataset import ClipCache, ClipDataset, SkippedFile, probe_clips, read_annotations
from echoquality.training.split import SplitItem, grouped_stratified_split, read_splits, write_splits

LAYER_ORDER = ("stem", "layer1", "layer2", "layer3", "layer4", "fc")


class TrainError(Exception):
    """A usage problem: bad options, no usable clips, output folder in use."""


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


# ---------------------------------------------------------------------------- helpers


def trainable_children(spec: tuple[str, ...] | list[str]) -> set[str]:
    """Child modules to train. A layer name means that layer and everything after it
    ("layer4" -> layer4 + fc); "all" trains everything; several names are united."""
    names: set[str] = set()
    for raw in spec:
        for name in str(raw).split(","):
            name = name.strip()
            if not name:
                continue
            if name == "all":
                return set(LAYER_ORDER)
            if name not in LAYER_ORDER:
                raise TrainError(
                    f"unknown trainable layer {name!r}; use one of: all, {', '.join(LAYER_ORDER)}"
                )
            names.update(LAYER_ORDER[LAYER_ORDER.index(name) :])
    if not names:
        raise TrainError("no trainable layers given")
    return names


def set_trainable(model: Any, children: set[str]) -> int:
    """Freeze every parameter outside *children*; returns the number of trainable parameters."""
    n = 0
    for name, module in model.named_children():
        on = name in children
        for p in module.parameters():
            p.requires_grad_(on)
            n += p.numel() if on else 0
    return n


def freeze_batchnorm_of_frozen(model: Any, children: set[str]) -> None:
    """Frozen layers keep their BatchNorm statistics (eval mode) while the rest trains."""
    for name, module in model.named_children():
        if name not in children:
            module.eval()


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _atomic_torch_save(obj: Any, path: Path) -> None:
    import torch

    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


@dataclass
class _Dist:
    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device_name: str) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    import torch
    import torch.distributed as dist

    d = _Dist(world, int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")))
    use_cuda = torch.cuda.is_available() and device_name != "cpu"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(d.local_rank)
    return d


def predict(
    model: Any, loader: Any, device: Any, criterion: Any = None
) -> tuple[np.ndarray, np.ndarray, float | None]:
    """(labels, scores, mean loss) over a loader, in eval mode, without gradients."""
    import torch

    model.eval()
    ys, ps, loss_sum, n = [], [], 0.0, 0
    with torch.no_grad():
        for x, y, _ in loader:
            x = x.to(device, non_blocking=True)
            y = y.to(device).reshape(-1)
            logits = model(x).float().reshape(-1)  # reshape, never squeeze: batches of one stay 1-D
            if criterion is not None:
                loss_sum += float(criterion(logits, y)) * y.numel()
            n += y.numel()
            ys.append(y.cpu().numpy())
            ps.append(torch.sigmoid(logits).cpu().numpy())
    if not ys:
        return np.zeros(0, int), np.zeros(0), None
    return (
        np.concatenate(ys).astype(int),
        np.concatenate(ps),
        (loss_sum / n if criterion is not None and n else None),
    )


def _loader(dataset: Any, batch_size: int, workers: int, sampler: Any = None, pin: bool = False) -> Any:
    from torch.utils.data import DataLoader

    return DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, shuffle=False, num_workers=workers, pin_memory=pin
    )


class _EpochPermutation:
    """Sampler: a fresh permutation per epoch from (seed, epoch) - identical after --resume."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(np.random.default_rng((self.seed, self.epoch)).permutation(self.n).tolist())

    def __len__(self) -> int:
        return self.n


# ---------------------------------------------------------------------------- training


def train(
    cfg: EchoConfig,
    *,
    resume: bool = False,
    force: bool = False,
    log: Any = print,
) -> TrainResult:
    """Run a training job described by ``cfg.train`` (and ``cfg.preprocess``); see module docstring."""
    import torch
    from torch import nn

    from echoquality.model import architecture_of, build_model, load_state_dict_checked, resolve_device
    from echoquality.training.tracking import NullTracker, make_tracker

    tc = cfg.train
    out = Path(tc.output_dir)
    dist_info = _init_distributed(tc.device)
    if dist_info.enabled and torch.cuda.is_available() and tc.device != "cpu":
        device = torch.device(f"cuda:{dist_info.local_rank}")
    else:
        device = resolve_device(tc.device)
    say = log if dist_info.main else (lambda *a, **k: None)

    last_path, best_path = out / "last.pt", out / "best_model.pt"
    if resume and not last_path.is_file():
        raise TrainError(f"--resume: no checkpoint at {last_path}")
    if not resume and not force and (last_path.exists() or best_path.exists()):
        raise TrainError(
            f"{out} already holds a trained model; use --resume to continue it, --force to start over, "
            "or another --output"
        )
    if tc.epochs < 1 or tc.batch_size < 1:
        raise TrainError("--epochs and --batch-size must be >= 1")
    if tc.scheduler not in ("plateau", "cosine"):
        raise TrainError(f"unknown scheduler {tc.scheduler!r}; use plateau or cosine")
    out.mkdir(parents=True, exist_ok=True)

    random.seed(tc.seed)
    np.random.seed(tc.seed % 2**32)
    torch.manual_seed(tc.seed)

    # ---- data: probe every clip once (fills the cache), drop unreadable files
    records = read_annotations(Path(tc.annotations), Path(tc.data_root) if tc.data_root else None)
    cache = ClipCache(Path(tc.cache_dir), cfg.preprocess) if tc.use_cache else None
    if cache is not None and dist_info.enabled and not dist_info.main:
        torch.distributed.barrier()  # rank 0 fills the cache first
    kept, cache_paths, skipped = probe_clips(records, cfg.preprocess, cache)
    if cache is not None and dist_info.enabled and dist_info.main:
        torch.distributed.barrier()
    if dist_info.main:
        _write_json(out / "skipped_files.json", [dataclasses.asdict(s) for s in skipped])
    for s in skipped:
        say(f"skipped {s.video_path}: {s.reason} - {s.detail}")
    if len(kept) < 2:
        raise TrainError(
            f"only {len(kept)} usable clip(s) of {len(records)}; see {out / 'skipped_files.json'}"
        )

    split_file = out / "splits.csv"
    if resume and split_file.is_file():
        assignment = read_splits(split_file)
    else:
        assignment = grouped_stratified_split(
            [SplitItem(r.video_path, r.group, r.label) for r in kept], tuple(tc.split), tc.seed
        )
        if dist_info.main:
            write_splits(
                split_file, [(r.video_path, r.group, r.label, assignment[r.video_path]) for r in kept]
            )
    idx = {
        s: [i for i, r in enumerate(kept) if assignment.get(r.video_path) == s]
        for s in ("train", "val", "test")
    }
    if not idx["train"]:
        raise TrainError("the training split is empty")
    sizes = {s: len(v) for s, v in idx.items()}

    def subset(name: str, augment: bool) -> ClipDataset:
        return ClipDataset(
            [kept[i] for i in idx[name]],
            [cache_paths[i] for i in idx[name]],
            cfg.preprocess,
            augment=tc.augment if augment else None,
            seed=tc.seed,
        )

    train_ds = subset("train", tc.augmentation)
    val_ds, test_ds = subset("val", False), subset("test", False)
    if dist_info.enabled:
        from torch.utils.data.distributed import DistributedSampler

        sampler: Any = DistributedSampler(
            train_ds, num_replicas=dist_info.world_size, rank=dist_info.rank, shuffle=True, seed=tc.seed
        )
    else:
        sampler = _EpochPermutation(len(train_ds), tc.seed)
    pin = device.type == "cuda"
    train_loader = _loader(train_ds, tc.batch_size, tc.num_workers, sampler, pin)
    val_loader = _loader(val_ds, tc.batch_size, tc.num_workers, None, pin)
    test_loader = _loader(test_ds, tc.batch_size, tc.num_workers, None, pin)

    # ---- model
    arch = tc.architecture
    state = None
    if tc.weights:
        state = load_state_dict_checked(Path(tc.weights))
        file_arch = architecture_of(state)
        if file_arch != arch:
            say(f"--weights hold a {file_arch} network: using architecture {file_arch} (not {arch})")
            arch = file_arch
    model = build_model(arch)
    if state is not None:
        model.load_state_dict(state)
        children = trainable_children(tuple(tc.trainable_layers))
    else:
        children = set(LAYER_ORDER)  # from scratch: frozen random layers would be pointless
        if set(trainable_children(tuple(tc.trainable_layers))) != children:
            say("no --weights: training from scratch, so all layers are trained")
    n_trainable = set_trainable(model, children)
    n_total = sum(p.numel() for p in model.parameters())
    model.to(device)
    net: Any = model
    if dist_info.enabled:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    labels_train = np.array([kept[i].label for i in idx["train"]])
    n_pos, n_neg = int(labels_train.sum()), int((1 - labels_train).sum())
    pos_weight = (n_neg / n_pos) if (tc.class_weighting and n_pos and n_neg) else 1.0
    criterion = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight, device=device))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=tc.learning_rate, weight_decay=tc.weight_decay)
    if tc.scheduler == "cosine":
        scheduler: Any = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=tc.epochs)
    else:
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=3)
    use_amp = bool(tc.mixed_precision and device.type == "cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    start_epoch, best_loss, best_epoch, bad_epochs = 0, float("inf"), 0, 0
    history: list[dict[str, float]] = []
    run_id = None
    if resume:
        ckpt = torch.load(last_path, map_location=device, weights_only=False)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        start_epoch, best_loss, best_epoch = ckpt["epoch"], ckpt["best_loss"], ckpt["best_epoch"]
        bad_epochs, history, run_id = ckpt["bad_epochs"], ckpt["history"], ckpt.get("mlflow_run_id")
        rng = ckpt.get("rng", {})
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        if "numpy" in rng:
            np.random.set_state(rng["numpy"])
        if "python" in rng:
            random.setstate(rng["python"])
        say(
            f"resuming from {last_path} after epoch {start_epoch} (best epoch {best_epoch}, val loss {best_loss:.4f})"
        )

    tracker: Any = NullTracker()
    if dist_info.main:
        tracker = make_tracker(
            tc.mlflow, tc.experiment_name, run_name=out.name, tracking_uri=tc.tracking_uri, run_id=run_id
        )
    infer_threshold = float(cfg.inference.threshold)
    thresholds = (0.5, infer_threshold)
    run_params = {
        "architecture": arch,
        "weights": tc.weights,
        "trainable": ",".join(sorted(children, key=LAYER_ORDER.index)),
        "trainable_params": n_trainable,
        "total_params": n_total,
        "epochs": tc.epochs,
        "batch_size": tc.batch_size,
        "learning_rate": tc.learning_rate,
        "weight_decay": tc.weight_decay,
        "scheduler": tc.scheduler,
        "pos_weight": round(pos_weight, 4),
        "augmentation": tc.augmentation,
        "seed": tc.seed,
        "device": str(device),
        "world_size": dist_info.world_size,
        "mixed_precision": use_amp,
        "train_size": sizes["train"],
        "val_size": sizes["val"],
        "test_size": sizes["test"],
        "skipped_files": len(skipped),
        "annotations": tc.annotations,
    }
    if not resume:
        tracker.log_params(run_params)
    if dist_info.main:
        import yaml

        (out / "config.yaml").write_text(yaml.safe_dump(_plain(cfg.to_dict()), sort_keys=False))
    say(
        f"{arch}: {n_trainable:,}/{n_total:,} trainable parameters ({', '.join(sorted(children, key=LAYER_ORDER.index))}); "
        f"clips train {sizes['train']} / val {sizes['val']} / test {sizes['test']}; device {device}"
    )

    # ---- epochs
    status = "FAILED"
    try:
        epoch = start_epoch
        for epoch in range(start_epoch + 1, tc.epochs + 1):
            t0 = time.perf_counter()
            sampler.set_epoch(epoch)
            train_ds.set_epoch(epoch)
            net.train()
            freeze_batchnorm_of_frozen(model, children)
            loss_sum, seen, correct = 0.0, 0, 0
            for x, y, _ in train_loader:
                x = x.to(device, non_blocking=True)
                y = y.to(device).reshape(-1)
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
                    logits = net(x).reshape(-1)
                loss = criterion(logits.float(), y)
                scaler.scale(loss).backward()
                if tc.grad_clip and tc.grad_clip > 0:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(params, tc.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                loss_sum += float(loss.detach()) * y.numel()
                seen += y.numel()
                correct += int(((logits.detach() >= 0).float() == y).sum())
            stats = torch.tensor([loss_sum, seen, correct], dtype=torch.float64, device=device)
            if dist_info.enabled:
                torch.distributed.all_reduce(stats)
            train_loss = float(stats[0] / max(stats[1], 1))
            train_acc = float(stats[2] / max(stats[1], 1))

            # validation on the unwrapped model (no collectives); rank 0's loss decides for all
            yv, pv, val_loss = predict(model, val_loader, device, criterion)
            if val_loss is None:
                val_loss = train_loss  # no validation clips: fall back to the training loss
            if dist_info.enabled:
                t = torch.tensor([val_loss], dtype=torch.float64, device=device)
                torch.distributed.broadcast(t, src=0)
                val_loss = float(t[0])
            val = evaluate_predictions(yv, pv, thresholds, loss=val_loss)
            if tc.scheduler == "cosine":
                scheduler.step()
            else:
                scheduler.step(val_loss)
            improved = val_loss < best_loss - tc.min_delta
            if improved:
                best_loss, best_epoch, bad_epochs = val_loss, epoch, 0
                if dist_info.main:
                    _atomic_torch_save(
                        {k: v.detach().cpu() for k, v in model.state_dict().items()}, best_path
                    )
            else:
                bad_epochs += 1
            row = {
                "epoch": epoch,
                "train_loss": train_loss,
                "train_accuracy": train_acc,
                "lr": float(optimizer.param_groups[0]["lr"]),
                "seconds": time.perf_counter() - t0,
                **val.flat("val_"),
            }
            history.append(row)
            if dist_info.main:
                _atomic_torch_save(
                    {
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "scaler": scaler.state_dict() if use_amp else None,
                        "epoch": epoch,
                        "best_loss": best_loss,
                        "best_epoch": best_epoch,
                        "bad_epochs": bad_epochs,
                        "history": history,
                        "architecture": arch,
                        "mlflow_run_id": tracker.run_id,
                        "rng": {
                            "torch": torch.get_rng_state(),
                            "numpy": np.random.get_state(),
                            "python": random.getstate(),
                        },
                    },
                    last_path,
                )
                tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch)
            auc = "-" if val.roc_auc is None else f"{val.roc_auc:.3f}"
            say(
                f"epoch {epoch}/{tc.epochs}: train loss {train_loss:.4f} acc {train_acc:.3f} | "
                f"val loss {val_loss:.4f} AUC {auc}{' *' if improved else ''} ({row['seconds']:.1f} s)"
            )
            if bad_epochs >= tc.early_stopping_patience:
                say(f"early stopping: no val-loss improvement for {bad_epochs} epochs")
                break

        # ---- test with the best model
        if dist_info.enabled:
            torch.distributed.barrier()  # rank 0 has finished writing best_model.pt
        if best_path.is_file():
            model.load_state_dict(torch.load(best_path, map_location=device, weights_only=True))
        test_report = None
        yt, pt, test_loss = predict(model, test_loader, device, criterion)
        if yt.size:
            test_report = evaluate_predictions(yt, pt, thresholds, loss=test_loss)
        if dist_info.main:
            _write_weights_note(best_path, arch, tc.annotations, kept)
            _finish_outputs(
                out,
                cfg,
                run_params,
                history,
                best_epoch,
                test_report,
                yt,
                pt,
                skipped,
                sizes,
                infer_threshold,
                tracker,
            )
        status = "FINISHED"
    finally:
        tracker.end(status)
        if dist_info.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return TrainResult(
        output_dir=out,
        best_model=best_path,
        best_epoch=best_epoch,
        epochs_run=history[-1]["epoch"] if history else start_epoch,
        history=history,
        test=test_report,
        split_sizes=sizes,
        skipped=skipped,
        mlflow_run_id=tracker.run_id,
    )


def _write_weights_note(best_path: Path, arch: str, annotations: str, kept: list[Any]) -> None:
    """Sidecar ``best_model.pt.json`` so ``infer`` can say what these weights are."""
    if not best_path.is_file():
        return
    from collections import Counter

    from echoquality.model.weights import write_sidecar

    sources = dict(Counter(r.label_source for r in kept))
    note = (
        f"{arch} weights trained by `echoquality train` on {len(kept)} clips from {annotations} "
        f"(label sources: {sources}); not the reference weights"
    )
    if sources.get("pseudo"):
        note += "; pseudo-labels are the model's own predictions (confirmation bias)"
    write_sidecar(best_path, note, architecture=arch, annotations=annotations, label_sources=sources)


def _finish_outputs(
    out: Path,
    cfg: EchoConfig,
    params: dict[str, Any],
    history: list[dict[str, float]],
    best_epoch: int,
    test: MetricsReport | None,
    y_test: np.ndarray,
    p_test: np.ndarray,
    skipped: list[SkippedFile],
    sizes: dict[str, int],
    threshold: float,
    tracker: Any,
) -> None:
    """metrics.json, plots and MLflow artifacts (rank 0)."""
    from echoquality.charts import save_history_plot, save_metric_plots

    plots = []
    if history:
        plots.append(save_history_plot(history, out / "training_history.png"))
    if test is not None:
        plots += save_metric_plots(y_test, p_test, out, prefix="test_", threshold=threshold)
        tracker.log_metrics(test.flat("test_"))
    metrics = {
        "best_epoch": best_epoch,
        "epochs_run": history[-1]["epoch"] if history else 0,
        "history": history,
        "test": test.to_dict() if test else None,
        "test_predictions": [
            {"label": int(y), "score": float(p)} for y, p in zip(y_test, p_test, strict=True)
        ],
        "split_sizes": sizes,
        "skipped_files": len(skipped),
        "params": params,
        "versions": package_versions("torch", "torchvision", "pydicom", "mlflow"),
        "mlflow_run_id": tracker.run_id,
    }
    _write_json(out / "metrics.json", metrics)
    for p in [
        out / "best_model.pt",
        out / "config.yaml",
        out / "metrics.json",
        out / "splits.csv",
        out / "skipped_files.json",
        *plots,
    ]:
        if p.is_file():
            tracker.log_artifact(p, artifact_path="plots" if p.suffix == ".png" else None)
