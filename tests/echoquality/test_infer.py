"""End-to-end `echoquality infer` on a synthetic DICOM tree, with random but valid weights.

The big runs use the "tiny" architecture; the full r2plus1d_18 runs on a handful of clips only.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from echoquality.cli import app
from echoquality.config import EchoConfig, PreprocessConfig
from echoquality.model.weights import save_random_weights, sha256_of
from echoquality.outputs import ALL_ERROR_KEYS, CSV_COLUMNS, ORIGINAL_ERROR_KEYS, atomic_write_json
from echoquality.scoring import assessment_for, status_for

runner = CliRunner()


def _flat(text: str) -> str:
    return " ".join(text.split())


def _infer(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, ["infer", "--quiet", "--device", "cpu", *args])
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.output


def _csv(out: Path) -> list[dict[str, str]]:
    with (out / "results.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _files_under_folders(root: Path) -> list[Path]:
    return [p for sub in root.iterdir() if sub.is_dir() for p in sub.rglob("*") if p.is_file()]


def _scorable(records) -> list:
    return [r for r in records if not r.expected_skip_reason]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_weights(tmp_path_factory.mktemp("weights") / "tiny.pt", "tiny", seed=0)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory, synth_root: Path, synth_records) -> Path:
    """A copy of the synthetic tree plus: two same-basename files in sub-folders, an empty
    directory inside a folder and a study folder without files."""
    root = tmp_path_factory.mktemp("infer_tree") / "raw"
    shutil.copytree(synth_root, root)
    src = root / _scorable(synth_records)[0].relative_path
    dup = root / "epiq7c-DUP01"
    for sub in ("a", "b"):
        (dup / sub).mkdir(parents=True)
        shutil.copy2(src, dup / sub / "clip")
    (dup / "empty_dir").mkdir()
    (root / "vivide95-EMPTY").mkdir()
    return root


@pytest.fixture(scope="module")
def first_run(tree: Path, tiny_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Worker processes (2), odd batch size, non-default threshold."""
    out = tmp_path_factory.mktemp("run1") / "out"
    code, output = _infer(
        "--data-dir", str(tree), "--output", str(out), "--weights", str(tiny_weights),
        "--workers", "2", "--batch-size", "3", "--threshold", "0.45",
    )  # fmt: skip
    assert code == 0, output
    return out, output


# --------------------------------------------------------------------------- first run: every output


def test_summary_totals(first_run, tree: Path, synth_records) -> None:
    out, output = first_run
    s = _json(out / "summary.json")
    folders = sorted(p.name for p in tree.iterdir() if p.is_dir())
    assert s["total_folders"] == len(folders)
    assert s["failed_folders"] == 1 and s["successful_folders"] == len(folders) - 1
    assert s["total_files"] == len(_files_under_folders(tree))  # directories are not files
    assert s["total_processed"] == len(_scorable(synth_records)) + 2
    assert s["total_pass"] + s["total_fail"] == s["total_processed"]
    assert s["overall_pass_rate"] == pytest.approx(100.0 * s["total_pass"] / s["total_processed"])
    assert [f["folder"] for f in s["folder_results"]] == folders
    assert "ECHO QUALITY INFERENCE SUMMARY" in output
    assert "not the reference weights" in _flat(output)


def test_every_manifest_file_scored_or_skipped_with_expected_reason(first_run, synth_records) -> None:
    out, _ = first_run
    rows = {(r["folder"], r["key"]): r for r in _csv(out)}
    assert any(r.expected_skip_reason for r in synth_records)
    for rec in synth_records:
        key = rec.relative_path.split("/", 1)[1]
        row = rows[(rec.folder, key)]
        if rec.expected_skip_reason:
            assert row["skip_reason"] == rec.expected_skip_reason, rec
            assert row["score"] == "" and row["skip_detail"]
        else:
            assert row["skip_reason"] == "" and row["score"] != "", (rec, row["skip_detail"])
            assert row["machine_type"] == rec.machine_type
            assert row["patient_id"] == rec.patient_id
            assert int(row["num_frames"]) == rec.num_frames
            assert row["photometric"] == rec.photometric


def test_csv_columns_and_status_consistency(first_run) -> None:
    out, _ = first_run
    rows = _csv(out)
    assert tuple(rows[0].keys()) == CSV_COLUMNS
    for row in rows:
        assert row["file_id"] == Path(row["key"]).name
        if row["score"]:
            score = float(row["score"])
            assert 0.0 <= score <= 1.0
            assert row["status"] == status_for(score, 0.45)
            assert row["assessment"] == assessment_for(score)


def test_scores_belong_to_the_right_files(first_run, tree: Path, tiny_weights: Path, synth_records) -> None:
    """Score a few files one at a time and compare with the batched, multi-process run."""
    from echoquality.model import load_model, score_batch
    from echoquality.preprocess import preprocess_file

    out, _ = first_run
    rows = {(r["folder"], r["key"]): r for r in _csv(out)}
    model = load_model(tiny_weights, "cpu")
    for rec in _scorable(synth_records)[:4]:
        _, tensor = preprocess_file(tree / rec.relative_path, PreprocessConfig(), rec.folder)
        expected = float(score_batch(model, torch.from_numpy(tensor)[None])[0])
        got = float(rows[(rec.folder, rec.relative_path.split("/", 1)[1])]["score"])
        assert got == pytest.approx(expected, abs=1e-5)


def test_results_keyed_by_relative_path(first_run) -> None:
    out, _ = first_run
    res = _json(out / "epiq7c-DUP01" / "inference_results.json")
    assert set(res) == {"a/clip", "b/clip"}
    assert {v["file_id"] for v in res.values()} == {"clip"}
    assert res["a/clip"]["score"] == pytest.approx(res["b/clip"]["score"], abs=1e-6)  # same content
    for v in res.values():
        assert set(v) >= {"score", "status", "assessment", "path"}
    summary = _json(out / "summary.json")
    dup = next(f for f in summary["folder_results"] if f["folder"] == "epiq7c-DUP01")
    assert set(dup["results"]) == {"a/clip", "b/clip"}
    assert dup["num_files"] == 2  # the empty sub-directory is not a file


def test_folder_summary_success_and_failure_variants(first_run, tree: Path, synth_records) -> None:
    out, _ = first_run
    failed = _json(out / "vivide95-EMPTY" / "folder_summary.json")
    assert failed == {
        "folder": "vivide95-EMPTY",
        "status": "failed",
        "error": failed["error"],
        "num_files": 0,
        "pass_count": 0,
        "fail_count": 0,
        "pass_rate": 0.0,
    }
    assert "No DICOM files found" in failed["error"]
    for folder in sorted({r.folder for r in synth_records}):
        fs = _json(out / folder / "folder_summary.json")
        recs = [r for r in synth_records if r.folder == folder]
        assert fs["status"] == "success"
        assert fs["num_processed"] == len(_scorable(recs)) == len(fs["results"])
        assert fs["pass_count"] + fs["fail_count"] == fs["num_processed"]
        assert fs["pass_rate"] == pytest.approx(100.0 * fs["pass_count"] / max(1, fs["num_processed"]))
        stats = fs["error_stats"]
        assert set(stats["error_counts"]) >= set(ORIGINAL_ERROR_KEYS) | set(ALL_ERROR_KEYS)
        assert stats["total_files"] == fs["num_files"]
        assert stats["successful_files"] == fs["num_processed"]
        assert sum(stats["error_counts"].values()) == fs["num_files"] - fs["num_processed"]
        for reason in {r.expected_skip_reason for r in recs if r.expected_skip_reason}:
            expected = {r.relative_path for r in recs if r.expected_skip_reason == reason}
            got = {Path(p).relative_to(tree).as_posix() for p in stats["error_files"][reason]}
            assert got == expected
        assert _json(out / folder / "inference_results.json") == fs["results"]


def test_failed_files_json(first_run, synth_records) -> None:
    out, _ = first_run
    for folder in sorted({r.folder for r in synth_records}):
        ff = _json(out / folder / f"{folder}_failed_files.json")
        expected = {
            r.relative_path.split("/", 1)[1]: r.expected_skip_reason
            for r in synth_records
            if r.folder == folder and r.expected_skip_reason
        }
        assert ff["folder"] == folder
        assert ff["total_failed_files"] == len(ff["failed_files"])
        got = {f["key"]: f for f in ff["failed_files"]}
        for key, reason in expected.items():
            assert got[key]["reasons"] == [reason]
            assert got[key]["filename"] == Path(key).name
            assert got[key]["detail"]  # human text


def test_run_info(first_run, tiny_weights: Path, tree: Path) -> None:
    out, _ = first_run
    info = _json(out / "run_info.json")
    assert info["weights_sha256"] == sha256_of(tiny_weights)
    assert info["weights_is_reference"] is False
    assert "random initialisation" in info["weights_note"]
    assert info["architecture"] == "tiny"
    assert info["threshold"] == 0.45
    assert info["device"] == "cpu"
    assert info["data_dir"] == str(tree)
    assert info["versions"]["torch"] == torch.__version__.split("+")[0]
    assert info["torch_version"] == torch.__version__
    assert info["config"]["inference"]["num_workers"] == 2
    assert info["config"]["preprocess"]["num_frames"] == 16
    assert info["started"] <= info["finished"]


def test_plots_carry_the_threshold_used(first_run, synth_records) -> None:
    out, _ = first_run
    dirs = [out] + [out / f for f in sorted({r.folder for r in synth_records})]
    for d in dirs:
        for name in ("score_distribution.png", "pass_fail_distribution.png"):
            with Image.open(d / name) as img:
                assert img.format == "PNG" and img.size[0] > 100
                assert img.text["threshold"] == "0.45"
    assert not (out / "vivide95-EMPTY" / "score_distribution.png").exists()


def test_histogram_line_is_at_the_threshold() -> None:
    from echoquality.outputs import score_histogram

    fig = score_histogram([0.1, 0.5, 0.9], 0.62, "t")
    ax = fig.axes[0]
    assert [line.get_xdata()[0] for line in ax.lines] == [0.62]
    assert sum(p.get_height() for p in ax.patches) == 3


def test_no_tmp_files_left(first_run) -> None:
    out, _ = first_run
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    for p in out.rglob("*.json"):
        json.loads(p.read_text())  # every JSON file parses


# --------------------------------------------------------------------------- resume, force, clean


@pytest.fixture()
def small_tree(tmp_path: Path, synth_root: Path, synth_records) -> Path:
    """Two folders: their scorable clips and skipped files."""
    root = tmp_path / "raw"
    folders = sorted({r.folder for r in synth_records})[:2]
    for f in folders:
        shutil.copytree(synth_root / f, root / f)
    return root


def _run_info(out: Path) -> dict:
    return _json(out / "run_info.json")


def test_resume_threshold_force_and_new_files(small_tree: Path, tiny_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    base = [
        "--data-dir",
        str(small_tree),
        "--output",
        str(out),
        "--weights",
        str(tiny_weights),
        "--workers",
        "0",
    ]
    assert _infer(*base)[0] == 0
    n_files = len(_files_under_folders(small_tree))
    assert _run_info(out)["files_processed_this_run"] == n_files
    first = {(r["folder"], r["key"]): r for r in _csv(out)}

    code, output = _infer(*base, "--no-plots")
    assert code == 0
    info = _run_info(out)
    assert info["files_processed_this_run"] == 0 and info["files_reused"] == n_files
    assert {(r["folder"], r["key"]): r for r in _csv(out)} == first

    # another threshold: statuses change without re-scoring
    assert _infer(*base, "--threshold", "0.9")[0] == 0
    assert _run_info(out)["files_processed_this_run"] == 0
    rows = _csv(out)
    assert all(r["status"] == status_for(float(r["score"]), 0.9) for r in rows if r["score"])
    with Image.open(out / "score_distribution.png") as img:
        assert img.text["threshold"] == "0.9"

    # a new file is the only one processed
    folder = next(p for p in sorted(small_tree.iterdir()))
    src = next(p for p in sorted(folder.iterdir()) if first[(folder.name, p.name)]["score"])
    shutil.copy2(src, folder / "new_clip")
    assert _infer(*base, "--no-plots")[0] == 0
    assert _run_info(out)["files_processed_this_run"] == 1
    new_row = next(r for r in _csv(out) if r["key"] == "new_clip")
    assert float(new_row["score"]) == pytest.approx(float(first[(folder.name, src.name)]["score"]), abs=1e-6)

    # --force re-scores everything, same scores
    assert _infer(*base, "--force", "--no-plots")[0] == 0
    assert _run_info(out)["files_processed_this_run"] == n_files + 1
    history = (out / "run_history.jsonl").read_text().splitlines()
    assert len(history) == 5


def test_other_weights_refused_without_force(small_tree: Path, tiny_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    base = ["--data-dir", str(small_tree), "--output", str(out), "--workers", "0", "--no-plots"]
    assert _infer(*base, "--weights", str(tiny_weights))[0] == 0
    before = (out / "summary.json").read_text()
    other = save_random_weights(tmp_path / "other.pt", "tiny", seed=1)
    code, output = _infer(*base, "--weights", str(other))
    assert code == 2
    assert "other weights" in _flat(output)
    assert (out / "summary.json").read_text() == before  # nothing was touched
    assert _infer(*base, "--weights", str(other), "--force")[0] == 0
    assert _run_info(out)["weights_sha256"] == sha256_of(other)
    # changed preprocessing is another cache key too
    code, output = _infer(*base, "--weights", str(other), "--fps-aware")
    assert code == 2 and "preprocessing" in _flat(output)


def test_clean_only_touches_the_output(small_tree: Path, tiny_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    base = [
        "--data-dir",
        str(small_tree),
        "--output",
        str(out),
        "--weights",
        str(tiny_weights),
        "--workers",
        "0",
    ]
    assert _infer(*base)[0] == 0
    (out / "my_notes.txt").write_text("old")
    before = {p: p.stat().st_size for p in _files_under_folders(small_tree)}
    assert _infer(*base, "--clean", "--no-plots")[0] == 0
    assert not (out / "my_notes.txt").exists()
    assert not (out / "score_distribution.png").exists()
    assert _run_info(out)["files_processed_this_run"] == len(before)
    assert {p: p.stat().st_size for p in _files_under_folders(small_tree)} == before

    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.docx").write_text("keep me")
    code, output = _infer(*base[:2], "--output", str(precious), "--weights", str(tiny_weights), "--clean")
    assert code == 2 and "does not look like an echoquality output" in _flat(output)
    assert (precious / "thesis.docx").read_text() == "keep me"
    code, output = _infer(
        *base[:2], "--output", str(small_tree.parent), "--weights", str(tiny_weights), "--clean"
    )
    assert code == 2 and "contains the data folder" in _flat(output)


def test_interrupted_run_keeps_finished_work(
    small_tree: Path, tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import echoquality.model as model_mod
    from echoquality.inference import run_inference

    real = model_mod.score_batch
    calls = {"n": 0}

    def flaky(model, batch):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(model, batch)

    monkeypatch.setattr(model_mod, "score_batch", flaky)
    cfg = EchoConfig()
    cfg.inference.data_dir, cfg.inference.output_dir = str(small_tree), str(tmp_path / "out")
    cfg.inference.num_workers, cfg.inference.batch_size, cfg.inference.device = 0, 2, "cpu"
    with pytest.raises(KeyboardInterrupt):
        run_inference(cfg, weights=tiny_weights, progress=False)
    states = list((tmp_path / "out").glob("*/inference_state.json"))
    saved = sum(1 for s in states for v in _json(s)["files"].values() if v["score"] is not None)
    assert saved == 4  # the two batches that finished
    monkeypatch.setattr(model_mod, "score_batch", real)
    summary = run_inference(cfg, weights=tiny_weights, progress=False)
    assert summary.reused >= 4
    assert summary.newly_scored == summary.total_files - summary.reused
    assert summary.total_processed == len([r for r in _csv(tmp_path / "out") if r["score"]])


def test_atomic_write_survives_a_kill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import echoquality.outputs as outputs

    target = tmp_path / "summary.json"
    atomic_write_json(target, {"ok": 1})

    def killed(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(outputs.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_json(target, {"ok": 2, "big": list(range(1000))})
    assert _json(target) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


# --------------------------------------------------------------------------- weights problems


def test_no_weights_exit_2_with_how_to(tmp_path: Path, tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ECHOQUALITY_WEIGHTS", raising=False)
    code, output = _infer("--data-dir", str(tree), "--output", str(tmp_path / "out"))
    assert code == 2
    flat = _flat(output)
    assert "echoquality download-weights --url" in flat
    assert "ECHOQUALITY_WEIGHTS" in flat and "--weights" in flat and "echoquality train" in flat
    assert not (tmp_path / "out").exists()


def test_env_var_weights_are_used(tmp_path: Path, small_tree: Path, tiny_weights: Path, monkeypatch) -> None:
    monkeypatch.setenv("ECHOQUALITY_WEIGHTS", str(tiny_weights))
    code, output = _infer(
        "--data-dir", str(small_tree), "--output", str(tmp_path / "o"), "--workers", "0", "--no-plots"
    )
    assert code == 0, output
    assert _run_info(tmp_path / "o")["weights_path"] == str(tiny_weights)


def test_bad_weights_exit_2(tmp_path: Path, tree: Path, tiny_weights: Path) -> None:
    out = tmp_path / "out"
    base = ["--data-dir", str(tree), "--output", str(out)]
    code, output = _infer(*base, "--weights", str(tmp_path / "missing.pt"))
    assert code == 2 and "not found" in _flat(output) and "download-weights" in _flat(output)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"<html>404 Not Found</html>" * 20)
    code, output = _infer(*base, "--weights", str(garbage))
    assert code == 2 and "not a readable PyTorch weights file" in _flat(output)
    sd = torch.load(tiny_weights, weights_only=True)
    sd["fc.weight"] = torch.zeros(400, sd["fc.weight"].shape[1])
    sd["fc.bias"] = torch.zeros(400)
    wrong = tmp_path / "wrong.pt"
    torch.save(sd, wrong)
    code, output = _infer(*base, "--weights", str(wrong))
    assert code == 2
    assert "fc.weight: expected (1, 128), file has (400, 128)" in _flat(output)
    assert not out.exists()  # nothing written for unusable weights


def test_usage_errors_exit_2(tmp_path: Path, tiny_weights: Path, tree: Path) -> None:
    code, output = _infer("--data-dir", str(tmp_path / "nope"), "--weights", str(tiny_weights))
    assert code == 2 and "data folder not found" in _flat(output)
    code, output = _infer("--data-dir", str(tree), "--weights", str(tiny_weights), "--threshold", "1.5")
    assert code == 2 and "between 0 and 1" in _flat(output)
    flat_dir = tmp_path / "flat"
    flat_dir.mkdir()
    (flat_dir / "a.dcm").write_bytes(b"x")
    code, output = _infer(
        "--data-dir", str(flat_dir), "--output", str(tmp_path / "o"), "--weights", str(tiny_weights)
    )
    assert code == 2 and "no sub-folders" in _flat(output)


# --------------------------------------------------------------------------- full model, Grad-CAM hook


def test_full_r2plus1d_18_on_a_few_clips(tmp_path: Path, synth_root: Path, synth_records) -> None:
    recs = _scorable(synth_records)[:3]
    data = tmp_path / "raw"
    for r in recs:
        (data / r.folder).mkdir(parents=True, exist_ok=True)
        shutil.copy2(synth_root / r.relative_path, data / r.relative_path)
    weights = save_random_weights(tmp_path / "full.pt", "r2plus1d_18", seed=0)
    code, output = _infer(
        "--data-dir", str(data), "--output", str(tmp_path / "out"), "--weights", str(weights),
        "--workers", "0", "--batch-size", "2", "--no-plots",
    )  # fmt: skip
    assert code == 0, output
    info = _run_info(tmp_path / "out")
    assert info["architecture"] == "r2plus1d_18"
    rows = _csv(tmp_path / "out")
    assert len(rows) == 3 and all(0 < float(r["score"]) < 1 for r in rows)


def test_gradcam_hook_calls_save_gradcam(
    tmp_path: Path, small_tree: Path, tiny_weights: Path, monkeypatch
) -> None:
    calls = []

    def save_gradcam(model, tensor, clip, out_path):
        calls.append((tensor.shape, clip.dtype, clip.shape, out_path))
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_bytes(b"GIF89a")
        return out_path

    fake = types.ModuleType("echoquality.evaluation.gradcam")
    fake.save_gradcam = save_gradcam
    monkeypatch.setitem(sys.modules, "echoquality.evaluation.gradcam", fake)
    out = tmp_path / "out"
    code, output = _infer(
        "--data-dir", str(small_tree), "--output", str(out), "--weights", str(tiny_weights),
        "--workers", "0", "--gradcam", "--no-plots",
    )  # fmt: skip
    assert code == 0, output
    scored = [r for r in _csv(out) if r["score"]]
    assert len(calls) == len(scored) > 0
    for tensor_shape, dtype, clip_shape, path in calls:
        assert tuple(tensor_shape) == (3, 16, 112, 112)
        assert dtype == np.uint8 and clip_shape[1:] == (112, 112, 3) and 1 <= clip_shape[0] <= 16
        assert path.is_file() and path.parent.name == "gradcam" and path.name.endswith("_gradcam.gif")


def test_gradcam_missing_module_is_a_clear_error(
    tmp_path: Path, small_tree: Path, tiny_weights: Path, monkeypatch
) -> None:
    monkeypatch.setitem(sys.modules, "echoquality.evaluation.gradcam", None)  # import fails
    code, output = _infer(
        "--data-dir",
        str(small_tree),
        "--output",
        str(tmp_path / "o"),
        "--weights",
        str(tiny_weights),
        "--gradcam",
    )
    assert code == 2 and "--gradcam is not available" in _flat(output)


def test_gradcam_with_the_real_module(
    tmp_path: Path, synth_root: Path, synth_records, tiny_weights: Path
) -> None:
    pytest.importorskip(
        "echoquality.evaluation.gradcam", reason="echoquality.evaluation.gradcam not available"
    )
    rec = _scorable(synth_records)[0]
    data = tmp_path / "raw"
    (data / rec.folder).mkdir(parents=True)
    shutil.copy2(synth_root / rec.relative_path, data / rec.relative_path)
    out = tmp_path / "out"
    code, output = _infer(
        "--data-dir", str(data), "--output", str(out), "--weights", str(tiny_weights),
        "--workers", "0", "--gradcam", "--no-plots",
    )  # fmt: skip
    assert code == 0, output
    gif = out / rec.folder / "gradcam" / f"{Path(rec.relative_path).name}_gradcam.gif"
    with Image.open(gif) as img:
        assert img.format == "GIF"
        assert img.n_frames == min(rec.num_frames // 2 + rec.num_frames % 2, 16)


# --------------------------------------------------------------------------- hardening (issue 9)


def _run(data: Path, out: Path, weights: Path, workers: int, decode_timeout_s: float = 300.0):
    from echoquality.inference import run_inference

    cfg = EchoConfig()
    cfg.inference.data_dir, cfg.inference.output_dir = str(data), str(out)
    cfg.inference.num_workers, cfg.inference.batch_size, cfg.inference.device = workers, 2, "cpu"
    cfg.inference.write_plots, cfg.inference.decode_timeout_s = False, decode_timeout_s
    return run_inference(cfg, weights=weights, progress=False)


def test_hanging_decoder_costs_only_its_file(
    tmp_path: Path, synth_root: Path, synth_records, tiny_weights: Path, monkeypatch
) -> None:
    """A decode that never returns (a real worker asleep in the decode step): after decode_timeout_s with
    no progress the workers are stopped, the other files in flight are retried, the hanging one is a
    decode_error saying so, and every file is in results.csv once."""
    from echoquality.inference.workers import HANG_HOOK_ENV, timed_out_detail

    data = tmp_path / "raw" / "epiq7c-HANG01"
    data.mkdir(parents=True)
    for i, rec in enumerate(_scorable(synth_records)[:5]):
        shutil.copy2(synth_root / rec.relative_path, data / f"clip{i}")
    monkeypatch.setenv(HANG_HOOK_ENV, "clip2")
    summary = _run(data.parent, tmp_path / "out", tiny_weights, workers=2, decode_timeout_s=4)
    rows = {r["key"]: r for r in _csv(tmp_path / "out")}
    assert sorted(rows) == [f"clip{i}" for i in range(5)]
    assert rows["clip2"]["skip_reason"] == "decode_error"
    assert rows["clip2"]["skip_detail"] == timed_out_detail(4)
    assert [k for k, r in rows.items() if r["score"]] == ["clip0", "clip1", "clip3", "clip4"]
    assert summary.scored_this_run == 4


def test_sigkilled_worker_costs_at_most_its_file(
    tmp_path: Path, synth_root: Path, synth_records, tiny_weights: Path, monkeypatch
) -> None:
    """A real SIGKILL of a real decode worker, mid-run: the pool is rebuilt, the files in flight are
    retried, a file that kills its worker twice is a decode_error and every file is in results.csv once."""
    from echoquality.inference import KILL_HOOK_ENV, KILL_STATE_ENV, WORKER_DIED

    data = tmp_path / "raw" / "epiq7c-KILL01"
    data.mkdir(parents=True)
    for i, rec in enumerate(_scorable(synth_records)[:6]):
        shutil.copy2(synth_root / rec.relative_path, data / f"clip{i}")
    (tmp_path / "state").mkdir()
    monkeypatch.setenv(KILL_HOOK_ENV, "clip1,clip4:1")  # clip1 kills every time, clip4 only once
    monkeypatch.setenv(KILL_STATE_ENV, str(tmp_path / "state"))
    _run(data.parent, tmp_path / "out", tiny_weights, workers=2)
    rows = _csv(tmp_path / "out")
    assert sorted(r["key"] for r in rows) == [f"clip{i}" for i in range(6)]  # each exactly once
    by_key = {r["key"]: r for r in rows}
    assert by_key["clip1"]["skip_reason"] == "decode_error"
    assert by_key["clip1"]["skip_detail"] == WORKER_DIED
    assert (tmp_path / "state" / "clip4").exists()  # clip4 did kill a worker ...
    scored = [k for k, r in by_key.items() if r["score"]]
    assert scored == ["clip0", "clip2", "clip3", "clip4", "clip5"]  # ... and was scored on its retry


def test_closing_mid_run_does_not_wait_for_a_hanging_decode(
    tmp_path: Path, synth_root: Path, synth_records, monkeypatch
) -> None:
    """An interrupted run (Ctrl-C) closes its prefetcher with a decode still running; if that decoder
    never returns, closing must stop the worker rather than wait for it."""
    import threading

    from echoquality.config import PreprocessConfig
    from echoquality.inference.workers import HANG_HOOK_ENV, Prefetcher, _Job

    clip = tmp_path / "clip0"
    shutil.copy2(synth_root / _scorable(synth_records)[0].relative_path, clip)
    monkeypatch.setenv(HANG_HOOK_ENV, "clip0")
    pf = Prefetcher([_Job(0, str(clip), "f")], PreprocessConfig(), workers=1, max_in_flight=2).start()
    closer = threading.Thread(target=pf.close, daemon=True)
    closer.start()
    closer.join(120)  # a liveness bound, not a speed check: without the fix close() waits an hour
    assert not closer.is_alive()


def test_entries_that_are_not_files_are_listed_with_a_reason(
    tmp_path: Path, synth_root: Path, synth_records, tiny_weights: Path
) -> None:
    import os

    folder = tmp_path / "raw" / "epiq7c-ODD01"
    folder.mkdir(parents=True)
    shutil.copy2(synth_root / _scorable(synth_records)[0].relative_path, folder / "good")
    (folder / "series.dcm").mkdir()  # a directory named like a file ...
    shutil.copy2(folder / "good", folder / "series.dcm" / "inner")  # ... is still searched
    (folder / "dangling").symlink_to(folder / "missing")
    (folder / "loop_a").symlink_to(folder / "loop_b")
    (folder / "loop_b").symlink_to(folder / "loop_a")
    (folder / "to_dir").symlink_to(folder / "series.dcm")
    (folder / "linked").symlink_to(folder / "good")
    os.mkfifo(folder / "pipe")  # opening it would block the run
    for workers in (0, 1):
        out = tmp_path / f"out{workers}"
        summary = _run(folder.parent, out, tiny_weights, workers=workers)
        rows = {r["key"]: r for r in _csv(out)}
        assert {k: r["skip_reason"] for k, r in rows.items()} == {
            "dangling": "unreadable",
            "good": "",
            "linked": "",
            "loop_a": "unreadable",
            "loop_b": "unreadable",
            "pipe": "not_a_file",
            "series.dcm": "not_a_file",
            "series.dcm/inner": "",
            "to_dir": "not_a_file",
        }
        assert "FIFO" in rows["pipe"]["skip_detail"] and "loop" in rows["loop_a"]["skip_detail"]
        assert "dangling" in rows["dangling"]["skip_detail"]
        assert summary.total_files == 9 and summary.total_processed == 3
        counts = _json(out / "epiq7c-ODD01" / "folder_summary.json")["error_stats"]["error_counts"]
        assert counts["not_a_file"] == 3 and counts["unreadable"] == 3


def test_isolation_reruns_suspects_one_at_a_time_and_names_the_culprit() -> None:
    """The bookkeeping both engines share: jobs in flight at a failure rerun alone; one that fails alone
    is the culprit; one that finishes alone is cleared; a job that could not be sent waits first."""
    from echoquality.inference.workers import Isolation, _Job

    a, b, c = (_Job(i, f"/x/f{i}.dcm", "/x") for i in range(3))
    iso = Isolation()
    assert not iso.active and iso.next_alone() is None
    assert iso.failed(a) is False and iso.failed(b) is False  # in flight together: suspects
    assert iso.active and iso.next_alone() is a and iso.next_alone() is None  # one at a time
    iso.finished(a)  # a was fine alone
    assert iso.next_alone() is b
    assert iso.failed(b) is True  # b failed alone: the culprit
    assert not iso.active
    iso.failed(c)
    assert iso.next_alone() is c
    iso.unsent(c)
    assert iso.alone is None and iso.next_alone() is c
