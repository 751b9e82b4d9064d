"""`echoquality evaluate` (bootstrap CIs on labelled clips) and Grad-CAM GIFs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from echoquality.cli import app
from echoquality.config import PreprocessConfig
from echoquality.evaluation.gradcam import compute_cam, save_gradcam
from echoquality.model import build_model
from echoquality.preprocess import load_clip, normalize_clip


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "tiny.pt"
    torch.save(build_model("tiny").state_dict(), path)
    return path


def test_evaluate_cli_with_bootstrap_and_gradcam(synth_root, synth_records, tiny_weights, tmp_path):
    scorable = [r for r in synth_records if r.label is not None and not r.expected_skip_reason]
    awkward = next(r for r in synth_records if r.expected_skip_reason)
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "path,label\n"
        + "".join(f"{r.relative_path},{r.label}\n" for r in scorable)
        + f"{awkward.relative_path},1\n"
    )
    out, gc = tmp_path / "eval", tmp_path / "gradcam"
    r = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--weights",
            str(tiny_weights),
            "--labels",
            str(labels),
            "--data-root",
            str(synth_root),
            "--output",
            str(out),
            "--bootstrap",
            "300",
            "--gradcam",
            str(gc),
            "--device",
            "cpu",
        ],
    )
    assert r.exit_code == 0, r.output
    data = json.loads((out / "evaluation.json").read_text())
    assert data["n_scored"] == len(scorable) and data["n_skipped"] == 1
    assert data["skipped"][0]["reason"] == awkward.expected_skip_reason
    m = data["metrics"]
    ci = data["confidence_intervals"]
    assert ci["roc_auc"]["estimate"] == pytest.approx(m["roc_auc"])
    for name, iv in ci.items():
        assert iv["lower"] <= iv["estimate"] <= iv["upper"], name
    assert set(m["at"]) == {"0.5", "0.3"}
    for name in ("roc_curve.png", "pr_curve.png", "confusion_matrix.png", "predictions.csv"):
        assert (out / name).is_file()
    assert len(list(gc.glob("*.gif"))) == len(scorable)


def test_evaluate_bad_weights_is_usage_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not torch")
    labels = tmp_path / "l.csv"
    labels.write_text("path,label\nx,1\n")
    r = CliRunner().invoke(app, ["evaluate", "--weights", str(bad), "--labels", str(labels)])
    assert r.exit_code == 2


def test_gradcam_gif_has_one_frame_per_clip_frame(synth_root, synth_records, tmp_path):
    cfg = PreprocessConfig()
    rec = min(
        (r for r in synth_records if r.label is not None and not r.expected_skip_reason),
        key=lambda r: r.num_frames,
    )
    _, clip = load_clip(synth_root / rec.relative_path, cfg)
    tensor = torch.from_numpy(normalize_clip(clip, cfg))
    torch.manual_seed(0)
    model = build_model("tiny")
    for p in model.parameters():
        p.requires_grad_(False)  # frozen (as after loading for inference): still works
    path = save_gradcam(model, tensor, clip, tmp_path / "cam" / "x.gif")
    with Image.open(path) as im:
        assert im.n_frames == clip.shape[0]
        assert im.size == (clip.shape[2], clip.shape[1])
    cam = compute_cam(model, tensor)
    assert cam.shape == tuple(tensor.shape[1:])  # upsampled over time and space
    assert cam.min() >= 0 and cam.max() <= 1.0 + 1e-6
    assert len(np.unique(np.round(cam[:, 56, 56], 4))) > 1 or cam.max() == 0  # varies over time


def test_gradcam_rejects_float_clip():
    with pytest.raises(ValueError):
        save_gradcam(build_model("tiny"), torch.zeros(3, 16, 112, 112), np.zeros((4, 112, 112, 3)), "x.gif")
