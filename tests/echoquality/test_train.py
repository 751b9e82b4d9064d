"""`echoquality train` end to end on synthetic cines (tiny network, CPU), plus the training mechanics.

The main fixture follows the real workflow: synth -> infer (random weights) -> prepare-data with
human labels (the synth manifest's ground truth) -> train -> infer with the trained weights.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from echoquality.cli import app
from echoquality.config import EchoConfig
from echoquality.model import build_model, load_state_dict_checked
from echoquality.training.finetune import set_trainable, trainable_children
from echoquality.training.train import TrainError, train

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
runner = CliRunner()


def _invoke(args: list[str]):
    r = runner.invoke(app, args)
    if r.exception and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    from echoquality.synth import generate_dataset

    root = tmp_path_factory.mktemp("echo_train")
    raw = root / "raw"
    records = generate_dataset(raw, seed=1, folders=10, clips_per_folder=8, include_awkward=False)
    # 1. inference with random tiny weights (what a new user has before any training)
    torch.manual_seed(0)
    init = root / "random_tiny.pt"
    torch.save(build_model("tiny").state_dict(), init)
    r = _invoke(
        [
            "infer",
            "--data-dir",
            str(raw),
            "--output",
            str(root / "results"),
            "--weights",
            str(init),
            "--device",
            "cpu",
            "--workers",
            "0",
            "--no-plots",
            "--quiet",
        ]
    )
    assert r.exit_code == 0, r.output
    # 2. the training set: human labels (ground truth of the synthetic cines) through prepare-data
    labels = root / "labels.csv"
    with labels.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label"])
        for rec in records:
            if rec.label is not None and not rec.expected_skip_reason:
                w.writerow([rec.relative_path, rec.label])
    td = root / "training_data"
    r = _invoke(
        [
            "prepare-data",
            "--results",
            str(root / "results"),
            "--output",
            str(td),
            "--data-dir",
            str(raw),
            "--labels",
            str(labels),
            "--no-pseudo-labels",
        ]
    )
    assert r.exit_code == 0, r.output
    # 3. train the tiny network from scratch, tracked in a temporary MLflow store
    cfg = {
        "train": {
            "learning_rate": 1e-3,
            "early_stopping_patience": 10,
            "experiment_name": "test_echo",
            "tracking_uri": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
        }
    }
    (root / "mlruns").mkdir()
    (root / "train.yaml").write_text(yaml.safe_dump(cfg))
    out = root / "model"
    r = _invoke(
        [
            "train",
            "--config",
            str(root / "train.yaml"),
            "--annotations",
            str(td / "echo_annotations.csv"),
            "--output",
            str(out),
            "--arch",
            "tiny",
            "--epochs",
            "16",
            "--batch-size",
            "8",
            "--seed",
            "7",
            "--cache-dir",
            str(root / "cache"),
            "--device",
            "cpu",
        ]
    )
    assert r.exit_code == 0, r.output
    print(r.output)
    return {
        "root": root,
        "raw": raw,
        "records": records,
        "td": td,
        "out": out,
        "cache": root / "cache",
        "log": r.output,
    }


def test_trained_tiny_model_separates_good_from_poor(workflow):
    out = workflow["out"]
    metrics = json.loads((out / "metrics.json").read_text())
    test = metrics["test"]
    print(
        f"\nsplit {metrics['split_sizes']}, best epoch {metrics['best_epoch']}/{metrics['epochs_run']}, "
        f"test ROC AUC {test['roc_auc']:.3f}, PR AUC {test['pr_auc']:.3f}, "
        f"acc@0.5 {test['at']['0.5']['accuracy']:.3f}, acc@0.3 {test['at']['0.3']['accuracy']:.3f}"
    )
    assert metrics["split_sizes"]["test"] >= 8
    assert test["roc_auc"] >= 0.9
    assert set(test["at"]) == {"0.5", "0.3"}
    assert len(metrics["history"]) == metrics["epochs_run"]
    for name in (
        "best_model.pt",
        "last.pt",
        "config.yaml",
        "splits.csv",
        "skipped_files.json",
        "test_roc_curve.png",
        "test_pr_curve.png",
        "test_confusion_matrix.png",
        "training_history.png",
    ):
        assert (out / name).is_file(), name
    # patient-grouped split
    with (out / "splits.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    by_patient: dict[str, set[str]] = {}
    for row in rows:
        by_patient.setdefault(row["patient_group"], set()).add(row["split"])
    assert all(len(s) == 1 for s in by_patient.values())
    # clip cache filled: one .npy per clip
    assert len(list(workflow["cache"].glob("*.npy"))) == len(rows)


def test_best_model_loads_in_infer(workflow):
    out, raw, root = workflow["out"], workflow["raw"], workflow["root"]
    sd = load_state_dict_checked(out / "best_model.pt")
    assert "fc.weight" in sd  # a plain state_dict
    assert "not the reference" in json.loads((out / "best_model.pt.json").read_text())["weights_note"]
    res = root / "results_trained"
    r = _invoke(
        [
            "infer",
            "--data-dir",
            str(raw),
            "--output",
            str(res),
            "--weights",
            str(out / "best_model.pt"),
            "--device",
            "cpu",
            "--workers",
            "0",
            "--no-plots",
            "--quiet",
        ]
    )
    assert r.exit_code == 0, r.output
    truth = {rec.relative_path: rec.label for rec in workflow["records"]}
    with (res / "results.csv").open() as fh:
        scored = [row for row in csv.DictReader(fh) if row["score"]]
    assert len(scored) == len(truth)
    y, s = [], []
    for row in scored:
        rel = Path(row["path"]).resolve().relative_to(raw.resolve()).as_posix()
        y.append(truth[rel])
        s.append(float(row["score"]))
    from sklearn.metrics import roc_auc_score

    auc = roc_auc_score(y, s)
    print(f"\ninfer with trained weights: {len(s)} clips, ROC AUC vs ground truth {auc:.3f} (train+val+test)")
    assert auc >= 0.9


def test_mlflow_run_recorded(workflow):
    import mlflow

    root = workflow["root"]
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("test_echo")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.data.params["architecture"] == "tiny" and run.data.params["seed"] == "7"
    assert "val_loss" in run.data.metrics and "test_roc_auc" in run.data.metrics
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert len(history) == json.loads((workflow["out"] / "metrics.json").read_text())["epochs_run"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"best_model.pt", "config.yaml", "metrics.json"} <= artifacts


def _subset(workflow, tmp_path: Path, n_patients: int = 4, extra_rows: list[dict] | None = None) -> Path:
    """A smaller annotations CSV (reusing the clip cache) in its own folder."""
    td = workflow["td"]
    with (td / "echo_annotations.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    patients = sorted({r["patient_id"] for r in rows})[:n_patients]
    keep = [r for r in rows if r["patient_id"] in patients]
    for r in keep:
        r["video_path"] = str((td / r["video_path"]).resolve())
    keep += extra_rows or []
    path = tmp_path / "ann.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(keep)
    return path


def _cfg(workflow, ann: Path, out: Path, **train_kw) -> EchoConfig:
    cfg = EchoConfig()
    t = cfg.train
    t.annotations, t.output_dir, t.cache_dir = str(ann), str(out), str(workflow["cache"])
    t.architecture, t.mlflow, t.device, t.learning_rate, t.batch_size = "tiny", False, "cpu", 1e-3, 4
    for k, v in train_kw.items():
        setattr(t, k, v)
    return cfg


def test_reruns_reproducible_with_seed(workflow, tmp_path):
    ann = _subset(workflow, tmp_path)
    a = train(_cfg(workflow, ann, tmp_path / "a", epochs=1, seed=3), log=lambda *a: None)
    b = train(_cfg(workflow, ann, tmp_path / "b", epochs=1, seed=3), log=lambda *a: None)
    c = train(_cfg(workflow, ann, tmp_path / "c", epochs=1, seed=4), log=lambda *a: None)
    assert (tmp_path / "a" / "splits.csv").read_text() == (tmp_path / "b" / "splits.csv").read_text()
    assert a.history[0]["train_loss"] == b.history[0]["train_loss"]
    assert a.history[0]["train_loss"] != c.history[0]["train_loss"]


def test_resume_continues_epoch_count_and_matches_uninterrupted(workflow, tmp_path):
    ann = _subset(workflow, tmp_path)
    full = train(_cfg(workflow, ann, tmp_path / "full", epochs=3), log=lambda *a: None)
    train(_cfg(workflow, ann, tmp_path / "part", epochs=2), log=lambda *a: None)
    with pytest.raises(TrainError, match="--resume"):
        train(_cfg(workflow, ann, tmp_path / "part", epochs=3), log=lambda *a: None)
    logs: list[str] = []
    resumed = train(_cfg(workflow, ann, tmp_path / "part", epochs=3), resume=True, log=logs.append)
    assert any("resuming" in str(m) and "after epoch 2" in str(m) for m in logs)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    assert resumed.epochs_run == 3
    assert json.loads((tmp_path / "part" / "metrics.json").read_text())["epochs_run"] == 3
    assert resumed.history[2]["train_loss"] == pytest.approx(full.history[2]["train_loss"], rel=1e-5)


def test_corrupt_and_missing_files_reported_and_skipped(workflow, tmp_path):
    td = workflow["td"]
    good = sorted((td / "echo_videos").iterdir())[0]
    corrupt = tmp_path / "corrupt.dcm"
    corrupt.write_bytes(good.read_bytes()[:2000])  # truncated DICOM
    extra = [
        {"video_path": str(corrupt), "quality_score": "1", "patient_id": "SYN0001", "label_source": "human"},
        {
            "video_path": str(tmp_path / "gone.dcm"),
            "quality_score": "0",
            "patient_id": "SYN0002",
            "label_source": "human",
        },
    ]
    ann = _subset(workflow, tmp_path, extra_rows=extra)
    n_rows = sum(1 for _ in csv.DictReader(ann.open()))
    # batch size 1: every batch is a single clip (no squeeze bug)
    result = train(
        _cfg(workflow, ann, tmp_path / "o", epochs=1, batch_size=1, use_cache=False), log=lambda *a: None
    )
    skipped = json.loads((tmp_path / "o" / "skipped_files.json").read_text())
    assert {s["video_path"] for s in skipped} == {str(corrupt), str(tmp_path / "gone.dcm")}
    assert all(s["reason"] and s["detail"] for s in skipped)
    assert sum(result.split_sizes.values()) == n_rows - 2
    with (tmp_path / "o" / "splits.csv").open() as fh:
        assert str(corrupt) not in fh.read()


def test_trainable_layers_by_name(workflow, tmp_path):
    assert trainable_children(["fc"]) == {"fc"}
    assert trainable_children(["layer4"]) == {"layer4", "fc"}
    assert trainable_children(["layer3"]) == {"layer3", "layer4", "fc"}
    assert trainable_children(["layer4", "fc"]) == {"layer4", "fc"}
    assert len(trainable_children(["all"])) == 6
    with pytest.raises(TrainError):
        trainable_children(["avgpool2"])
    m = build_model("tiny")
    n = set_trainable(m, trainable_children(["layer4"]))
    assert n == sum(p.numel() for p in m.layer4.parameters()) + sum(p.numel() for p in m.fc.parameters())
    # fine-tuning from weights changes layer4/fc and nothing else
    torch.manual_seed(1)
    init = tmp_path / "init.pt"
    torch.save(build_model("tiny").state_dict(), init)
    ann = _subset(workflow, tmp_path, n_patients=3)
    train(
        _cfg(workflow, ann, tmp_path / "ft", epochs=1, weights=str(init), trainable_layers=("layer4",)),
        log=lambda *a: None,
    )
    before = torch.load(init, weights_only=True)
    after = torch.load(tmp_path / "ft" / "last.pt", weights_only=False)["model"]
    changed = {
        k.split(".")[0] for k in before if k.endswith("weight") and not torch.equal(before[k], after[k])
    }
    assert changed == {"layer4", "fc"}


def test_training_without_mlflow_module(workflow, tmp_path, monkeypatch):
    from echoquality.training.tracking import NullTracker, make_tracker

    monkeypatch.setitem(sys.modules, "mlflow", None)  # import fails
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tracker = make_tracker(True, "x")
    assert isinstance(tracker, NullTracker)
    assert any("mlflow" in str(w.message) for w in caught)
    ann = _subset(workflow, tmp_path, n_patients=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = train(_cfg(workflow, ann, tmp_path / "o", epochs=1, mlflow=True), log=lambda *a: None)
    assert result.mlflow_run_id is None and (tmp_path / "o" / "best_model.pt").is_file()


def test_cli_usage_errors(tmp_path):
    r = runner.invoke(
        app,
        [
            "train",
            "--annotations",
            str(tmp_path / "none.csv"),
            "--output",
            str(tmp_path / "o"),
            "--no-mlflow",
        ],
    )
    assert r.exit_code == 2 and "prepare-data" in r.output
    shutil.rmtree(tmp_path / "o", ignore_errors=True)


def test_early_stopping_needs_a_drop_larger_than_min_delta():
    from echoquality.training.callbacks import EarlyStopping

    stopper = EarlyStopping(patience=2, min_delta=0.1)
    assert stopper.update(1.0, 1) and stopper.best_epoch == 1
    assert not stopper.update(0.95, 2)  # not better by more than min_delta
    assert not stopper.stop
    assert stopper.update(0.8, 3) and stopper.bad_epochs == 0
    assert not stopper.update(0.9, 4) and not stopper.update(0.75, 5)
    assert stopper.stop and (stopper.best_loss, stopper.best_epoch) == (0.8, 3)
