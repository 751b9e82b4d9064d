"""Score human-labelled clips with a weights file and report metrics with bootstrap CIs.

This is the honest check of a model: labels from people (``path,label`` CSV), not the
model's own pseudo-labels. Metrics are those of training (at 0.5 and at the PASS
threshold) with percentile-bootstrap 95% intervals over clips (seeded).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from echoquality.config import PreprocessConfig
from echoquality.evaluation.metrics import Interval, MetricsReport, bootstrap_ci, evaluate_predictions
from echoquality.provenance import package_versions
from echoquality.scoring import DEFAULT_THRESHOLD
from echoquality.training.selection import read_labels


@dataclass(frozen=True)
class Prediction:
    path: str
    label: int
    score: float


@dataclass
class EvaluationResult:
    report: MetricsReport
    intervals: dict[str, Interval]
    predictions: list[Prediction]
    skipped: list[dict[str, str]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def _gif_name(path: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", path.name)[-60:]
    return f"{stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}_gradcam.gif"


def evaluate(
    weights: Path,
    labels_csv: Path,
    *,
    data_root: Path | None = None,
    output_dir: Path = Path("results/evaluation"),
    preprocess: PreprocessConfig | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    n_bootstrap: int = 1000,
    seed: int = 42,
    device: str = "auto",
    batch_size: int = 8,
    gradcam_dir: Path | None = None,
    log=print,
) -> EvaluationResult:
    """Score every labelled clip (unreadable ones reported and left out) and write the report."""
    import torch

    from echoquality.charts import save_metric_plots
    from echoquality.dicom import SkipError
    from echoquality.model import load_model, resolve_device, score_batch
    from echoquality.preprocess import load_clip, normalize_clip

    cfg = preprocess or PreprocessConfig()
    root = data_root if data_root is not None else Path(labels_csv).parent
    labels = read_labels(Path(labels_csv), root)
    dev = resolve_device(device)
    model = load_model(Path(weights), dev)

    preds: list[Prediction] = []
    skipped: list[dict[str, str]] = []
    batch: list[tuple[Path, int, np.ndarray, np.ndarray]] = []

    def flush() -> None:
        if not batch:
            return
        scores = score_batch(model, np.stack([b[3] for b in batch]), dev)
        for (p, y, clip, tensor), s in zip(batch, scores, strict=True):
            preds.append(Prediction(str(p), y, float(s)))
            if gradcam_dir is not None:
                from echoquality.evaluation.gradcam import save_gradcam

                save_gradcam(model, torch.from_numpy(tensor), clip, Path(gradcam_dir) / _gif_name(p))
        batch.clear()

    for item in labels:
        try:
            if not item.path.is_file():
                raise FileNotFoundError(f"file not found: {item.path}")
            _, clip = load_clip(item.path, cfg)
        except SkipError as exc:
            skipped.append({"path": str(item.path), "reason": exc.reason.value, "detail": exc.detail})
            continue
        except OSError as exc:
            skipped.append({"path": str(item.path), "reason": "missing", "detail": str(exc)})
            continue
        batch.append((item.path, item.label, clip, normalize_clip(clip, cfg)))
        if len(batch) >= batch_size:
            flush()
    flush()
    for s in skipped:
        log(f"skipped {s['path']}: {s['reason']} - {s['detail']}")
    if not preds:
        raise ValueError(f"no labelled clip in {labels_csv} could be scored")

    y = np.array([p.label for p in preds])
    s = np.array([p.score for p in preds])
    thresholds = (0.5, threshold)
    report = evaluate_predictions(y, s, thresholds)
    intervals = bootstrap_ci(y, s, thresholds, n_resamples=n_bootstrap, seed=seed)

    output_dir.mkdir(parents=True, exist_ok=True)
    files = save_metric_plots(y, s, output_dir, threshold=threshold)
    with (output_dir / "predictions.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "score"])
        w.writerows((p.path, p.label, f"{p.score:.6f}") for p in preds)
    files.append(output_dir / "predictions.csv")
    payload = {
        "weights": str(weights),
        "labels": str(labels_csv),
        "n_scored": len(preds),
        "n_skipped": len(skipped),
        "skipped": skipped,
        "threshold": threshold,
        "metrics": report.to_dict(),
        "confidence_intervals": {k: asdict(v) for k, v in intervals.items()},
        "bootstrap": {"resamples": n_bootstrap, "seed": seed, "level": 0.95},
        "preprocess": asdict(cfg),
        "versions": package_versions("torch", "torchvision", "pydicom"),
    }
    (output_dir / "evaluation.json").write_text(json.dumps(payload, indent=2, default=str))
    files.append(output_dir / "evaluation.json")
    return EvaluationResult(report, intervals, preds, skipped, files)
