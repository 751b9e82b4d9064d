"""Model building, architecture detection, weights validation and scoring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from echoquality.model import (
    WeightsError,
    architecture_of,
    build_model,
    check_state_dict,
    expected_shapes,
    load_model,
    load_state_dict_checked,
    resolve_device,
    resolve_weights_path,
    score_batch,
)

CHILDREN = ["stem", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc"]


def _meta_state(arch: str) -> dict[str, torch.Tensor]:
    """A state_dict with the right shapes but no memory (only shapes are validated)."""
    return {k: torch.empty(s, device="meta") for k, s in expected_shapes(arch).items()}


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "tiny.pt"
    torch.save(build_model("tiny").state_dict(), path)
    return path


@pytest.mark.parametrize("arch", ["tiny", "r2plus1d_18"])
def test_child_names_and_single_logit_head(arch: str) -> None:
    with torch.device("meta"):
        model = build_model(arch)
    assert [n for n, _ in model.named_children()] == CHILDREN
    assert model.fc.out_features == 1


def test_tiny_is_small_and_runs_on_a_clip() -> None:
    model = build_model("tiny").eval()
    n_params = sum(p.numel() for p in model.parameters())
    assert 150_000 < n_params < 500_000
    with torch.no_grad():
        out = model(torch.randn(2, 3, 16, 112, 112))
    assert out.shape == (2, 1)


def test_r2plus1d_18_has_the_reference_layout() -> None:
    shapes = expected_shapes("r2plus1d_18")
    assert shapes["fc.weight"] == (1, 512)
    assert shapes["stem.0.weight"] == (45, 3, 1, 7, 7)
    assert (
        sum(int(np.prod(s)) for k, s in shapes.items() if "running" not in k and "num_batches" not in k)
        > 31e6
    )


def test_unknown_architecture() -> None:
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("resnet50")


@pytest.mark.parametrize("arch", ["tiny", "r2plus1d_18"])
def test_architecture_of_detects_both_also_with_prefix(arch: str) -> None:
    sd = _meta_state(arch)
    assert architecture_of(sd) == arch
    assert architecture_of({f"module.{k}": v for k, v in sd.items()}) == arch


def test_architecture_of_rejects_foreign_state_dict() -> None:
    with pytest.raises(WeightsError, match="not belong to a known quality network"):
        architecture_of({"encoder.weight": torch.zeros(3), "decoder.bias": torch.zeros(2)})


def test_kinetics_head_is_named_in_the_error() -> None:
    sd = _meta_state("r2plus1d_18")
    sd["fc.weight"] = torch.empty(400, 512, device="meta")
    sd["fc.bias"] = torch.empty(400, device="meta")
    with pytest.raises(WeightsError) as info:
        check_state_dict(sd)
    msg = str(info.value)
    assert "fc.weight: expected (1, 512), file has (400, 512)" in msg
    assert "Kinetics-400" in msg


def test_missing_and_unexpected_keys_are_listed() -> None:
    sd = _meta_state("r2plus1d_18")
    del sd["layer4.1.conv2.0.3.weight"]
    sd["extra.head.weight"] = torch.empty(2, device="meta")
    with pytest.raises(WeightsError) as info:
        check_state_dict(sd)
    msg = str(info.value)
    assert "1 missing key(s): layer4.1.conv2.0.3.weight" in msg
    assert "1 unexpected key(s): extra.head.weight" in msg


def test_load_checked_accepts_checkpoint_wrappers_and_prefixes(tmp_path: Path, tiny_weights: Path) -> None:
    sd = torch.load(tiny_weights, weights_only=True)
    wrapped = {"epoch": 3, "model_state_dict": {f"module.{k}": v for k, v in sd.items()}, "best_auc": 0.9}
    p = tmp_path / "ckpt.pt"
    torch.save(wrapped, p)
    loaded = load_state_dict_checked(p)
    assert set(loaded) == set(sd)
    assert all(torch.equal(loaded[k], sd[k]) for k in sd)
    p2 = tmp_path / "sd.pt"
    torch.save({"state_dict": sd}, p2)
    assert set(load_state_dict_checked(p2)) == set(sd)


def test_load_checked_file_errors(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not found"):
        load_state_dict_checked(tmp_path / "nope.pt")
    with pytest.raises(WeightsError, match="not a file"):
        load_state_dict_checked(tmp_path)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(WeightsError, match="empty"):
        load_state_dict_checked(empty)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a pickle at all\x00\x01" * 50)
    with pytest.raises(WeightsError, match="not a readable PyTorch weights file"):
        load_state_dict_checked(garbage)
    not_dict = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], not_dict)
    with pytest.raises(WeightsError, match="expected a state_dict"):
        load_state_dict_checked(not_dict)


def test_load_model_eval_and_scores_match_manual_sigmoid(tiny_weights: Path) -> None:
    model = load_model(tiny_weights, "cpu")
    assert not model.training
    torch.manual_seed(1)
    x = torch.randn(3, 3, 16, 112, 112)
    scores = score_batch(model, x)
    assert scores.shape == (3,)
    with torch.no_grad():
        manual = torch.sigmoid(model(x)[:, 0]).numpy()
    np.testing.assert_allclose(scores, manual, rtol=1e-5, atol=1e-6)
    assert np.all((scores > 0) & (scores < 1))
    # a single (3, T, H, W) clip is accepted and scored like the first batch element
    np.testing.assert_allclose(score_batch(model, x[0]), scores[:1], rtol=1e-4, atol=1e-5)


def test_full_model_channels_last_scores_equal_default_layout() -> None:
    torch.manual_seed(0)
    ref = build_model("r2plus1d_18").eval()
    from echoquality.model import prepare_for_inference

    fast = prepare_for_inference(build_model("r2plus1d_18"), "cpu")
    fast.load_state_dict(ref.state_dict())
    x = torch.randn(1, 3, 16, 112, 112)
    with torch.no_grad():
        expected = torch.sigmoid(ref(x)[:, 0]).numpy()
    np.testing.assert_allclose(score_batch(fast, x), expected, rtol=1e-4, atol=1e-5)


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_resolve_weights_path_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ECHOQUALITY_WEIGHTS", raising=False)
    assert resolve_weights_path(None) is None
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "video_quality_model.pt").write_bytes(b"x")
    assert resolve_weights_path(None) == Path("weights/video_quality_model.pt")
    monkeypatch.setenv("ECHOQUALITY_WEIGHTS", str(tmp_path / "env.pt"))
    assert resolve_weights_path(None) == tmp_path / "env.pt"
    assert resolve_weights_path("cli.pt") == Path("cli.pt")


def test_score_batch_numpy_input_matches_tensor_input_and_logits(tiny_weights: Path) -> None:
    from echoquality.model import batch_logits, score_batch

    model = load_model(tiny_weights, "cpu")
    torch.manual_seed(2)
    x = torch.randn(2, 3, 16, 112, 112)
    scores = score_batch(model, x.numpy(), "cpu")
    assert scores.dtype == np.float64 and scores.shape == (2,)
    np.testing.assert_array_equal(scores, score_batch(model, x))
    logits = batch_logits(model, x)
    assert logits.shape == (2,) and not logits.requires_grad
    np.testing.assert_allclose(torch.sigmoid(logits).numpy(), scores, rtol=1e-6)
