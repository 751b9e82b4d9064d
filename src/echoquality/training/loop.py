"""The epochs: optimiser and schedule, the training step (AMP on CUDA only), validation, test.

BCEWithLogits (pos_weight from the training split's class balance) + Adam + plateau or cosine
schedule, gradient clipping. Validation runs on the unwrapped model (no collectives); rank 0's
loss decides for all ranks. After the last epoch the best checkpoint scores the test split.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from echoquality.config import TrainConfig
from echoquality.evaluation.metrics import evaluate_predictions
from echoquality.model import batch_logits
from echoquality.training.callbacks import epoch_line, epoch_row
from echoquality.training.checkpoint import CheckpointPaths, RunState, save_best, save_last
from echoquality.training.data import TrainData
from echoquality.training.distributed import Dist, all_reduce_sum, barrier, broadcast_float
from echoquality.training.finetune import Network, freeze_batchnorm_of_frozen
from echoquality.training.report import TestOutcome


@dataclass
class Optimisation:
    """Loss, optimiser, LR schedule and gradient scaler of one run."""

    criterion: Any
    optimizer: Any
    scheduler: Any
    scaler: Any
    params: list[Any]
    use_amp: bool
    pos_weight: float
    cosine: bool
    grad_clip: float | None

    def step(self, net: Any, x: Any, y: Any) -> tuple[Any, Any]:
        """One optimisation step on a batch; returns (loss, logits), detached."""
        import torch

        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.use_amp):
            logits = net(x).reshape(-1)
        loss = self.criterion(logits.float(), y)
        self.scaler.scale(loss).backward()
        if self.grad_clip and self.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach(), logits.detach()

    def step_scheduler(self, val_loss: float) -> None:
        if self.cosine:
            self.scheduler.step()
        else:
            self.scheduler.step(val_loss)

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])


def make_optimisation(model: Any, tc: TrainConfig, device: Any, train_labels: np.ndarray) -> Optimisation:
    """Loss with class weighting, Adam over the trainable parameters, the schedule, the AMP scaler."""
    import torch
    from torch import nn

    n_pos, n_neg = int(train_labels.sum()), int((1 - train_labels).sum())
    pos_weight = (n_neg / n_pos) if (tc.class_weighting and n_pos and n_neg) else 1.0
    criterion = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight, device=device))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=tc.learning_rate, weight_decay=tc.weight_decay)
    cosine = tc.scheduler == "cosine"
    if cosine:
        scheduler: Any = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=tc.epochs)
    else:
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=3)
    use_amp = bool(tc.mixed_precision and device.type == "cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    return Optimisation(
        criterion, optimizer, scheduler, scaler, params, use_amp, pos_weight, cosine, tc.grad_clip
    )


def predict(
    model: Any, loader: Any, device: Any, criterion: Any = None
) -> tuple[np.ndarray, np.ndarray, float | None]:
    """(labels, scores, mean loss) over a loader, in eval mode, without gradients."""
    import torch

    model.eval()
    ys, ps, loss_sum, n = [], [], 0.0, 0
    for x, y, _ in loader:
        y = y.to(device).reshape(-1)
        logits = batch_logits(model, x, device)
        if criterion is not None:
            loss_sum += float(criterion(logits, y)) * y.numel()
        n += y.numel()
        ys.append(y.cpu().numpy())
        ps.append(torch.sigmoid(logits).cpu().numpy())
    if not ys:
        return np.zeros(0, int), np.zeros(0), None
    mean_loss = loss_sum / n if criterion is not None and n else None
    return np.concatenate(ys).astype(int), np.concatenate(ps), mean_loss


def train_one_epoch(
    net: Any, network: Network, loader: Any, optim: Optimisation, device: Any, d: Dist
) -> tuple[float, float]:
    """One pass over the training loader; (mean loss, accuracy at logit 0) over all ranks."""
    import torch

    net.train()
    freeze_batchnorm_of_frozen(network.model, network.children)
    loss_sum, seen, correct = 0.0, 0, 0
    for x, y, _ in loader:
        x = x.to(device, non_blocking=True)
        y = y.to(device).reshape(-1)
        loss, logits = optim.step(net, x, y)
        loss_sum += float(loss) * y.numel()
        seen += y.numel()
        correct += int(((logits >= 0).float() == y).sum())
    stats = torch.tensor([loss_sum, seen, correct], dtype=torch.float64, device=device)
    all_reduce_sum(stats, d)
    return float(stats[0] / max(stats[1], 1)), float(stats[2] / max(stats[1], 1))


@dataclass
class Trainer:
    """Runs the epochs of one training job and scores the test split with the best checkpoint."""

    tc: TrainConfig
    net: Any  # what the training step calls (DDP-wrapped under torchrun)
    network: Network
    data: TrainData
    optim: Optimisation
    device: Any
    dist: Dist
    paths: CheckpointPaths
    state: RunState
    tracker: Any
    thresholds: tuple[float, ...]
    say: Any

    def fit(self) -> None:
        """Epochs after ``state.epoch`` up to ``tc.epochs``, or until early stopping."""
        for epoch in range(self.state.epoch + 1, self.tc.epochs + 1):
            if self.run_epoch(epoch):
                break

    def run_epoch(self, epoch: int) -> bool:
        """Train, validate, checkpoint and log one epoch; True when early stopping ends the run."""
        t0 = time.perf_counter()
        self.data.set_epoch(epoch)
        model = self.network.model
        train_loss, train_acc = train_one_epoch(
            self.net, self.network, self.data.train_loader, self.optim, self.device, self.dist
        )
        yv, pv, val_loss = predict(model, self.data.val_loader, self.device, self.optim.criterion)
        if val_loss is None:
            val_loss = train_loss  # no validation clips: fall back to the training loss
        val_loss = broadcast_float(val_loss, self.dist, self.device)
        val = evaluate_predictions(yv, pv, self.thresholds, loss=val_loss)
        self.optim.step_scheduler(val_loss)
        stopper = self.state.stopper
        improved = stopper.update(val_loss, epoch)
        if improved and self.dist.main:
            save_best(model, self.paths.best)
        row = epoch_row(epoch, train_loss, train_acc, self.optim.lr, time.perf_counter() - t0, val)
        self.state.history.append(row)
        self.state.epoch = epoch
        if self.dist.main:
            self.state.mlflow_run_id = self.tracker.run_id
            save_last(self.paths.last, model, self.optim, self.state, self.network.architecture)
            self.tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch)
        self.say(epoch_line(row, self.tc.epochs, val, improved))
        if stopper.stop:
            self.say(f"early stopping: no val-loss improvement for {stopper.bad_epochs} epochs")
            return True
        return False

    def test(self) -> TestOutcome:
        """The best checkpoint's report on the test split (None when the split is empty)."""
        import torch

        barrier(self.dist)  # rank 0 has finished writing best_model.pt
        model = self.network.model
        if self.paths.best.is_file():
            model.load_state_dict(torch.load(self.paths.best, map_location=self.device, weights_only=True))
        yt, pt, test_loss = predict(model, self.data.test_loader, self.device, self.optim.criterion)
        report = evaluate_predictions(yt, pt, self.thresholds, loss=test_loss) if yt.size else None
        return TestOutcome(report, yt, pt)
