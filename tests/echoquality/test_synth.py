"""Synthetic dataset: layout, manifest truth, determinism, visible degradations, CLI."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from echoquality.config import PreprocessConfig
from echoquality.dicom import SkipError, is_dicom, read_info
from echoquality.preprocess import load_clip
from echoquality.synth import (
    DEGRADATIONS,
    INFO_NAME,
    MANIFEST_COLUMNS,
    MANIFEST_NAME,
    US_MULTIFRAME_SOP,
    ClipSpec,
    generate_dataset,
    read_manifest,
    render_clip,
)
from echoquality.synth.render import _Geometry


def _digest_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_layout_and_manifest(synth_root, synth_records):
    assert read_manifest(synth_root / MANIFEST_NAME) == synth_records
    header = (synth_root / MANIFEST_NAME).read_text().splitlines()[0].split(",")
    assert (
        tuple(header)
        == MANIFEST_COLUMNS
        == (
            "relative_path",
            "folder",
            "patient_id",
            "machine_type",
            "label",
            "degradation",
            "photometric",
            "transfer_syntax",
            "num_frames",
            "fps",
            "expected_skip_reason",
        )
    )
    files = {str(p.relative_to(synth_root)) for p in synth_root.rglob("*") if p.is_file()} - {
        MANIFEST_NAME,
        INFO_NAME,
    }
    info = json.loads((synth_root / INFO_NAME).read_text())
    assert info["parameters"]["seed"] == 0 and info["files"] == len(synth_records)
    assert info["versions"]["pydicom"] == pydicom.__version__
    assert files == {r.relative_path for r in synth_records}
    for rec in synth_records:
        folder, name = rec.relative_path.split("/")
        assert folder == rec.folder and re.fullmatch(r"[a-z0-9]+-SYN\d{4}", folder)
        assert folder.split("-")[1] == rec.patient_id
    names = [r.relative_path.split("/")[1] for r in synth_records if r.expected_skip_reason != "not_dicom"]
    bare = [n for n in names if not n.endswith(".dcm")]
    assert len(bare) > len(names) / 2 and all(
        re.fullmatch(r"[0-9.]+", n) for n in bare
    )  # SOP UIDs, no extension
    assert any(n.endswith(".dcm") for n in names)
    machines = {r.machine_type for r in synth_records if r.label is not None}
    assert machines == {"epiq7c", "affiniti70g", "affiniti50g", "vivide95", "vivids60", "vivids70"}


def test_manifest_matches_dicom_headers(synth_root, synth_records):
    for rec in synth_records:
        path = synth_root / rec.relative_path
        if rec.expected_skip_reason == "not_dicom":
            assert not is_dicom(path)
            continue
        info = read_info(path)
        assert info.photometric == rec.photometric
        assert (info.transfer_syntax or "") == rec.transfer_syntax
        assert info.machine_type == rec.machine_type
        assert info.patient_id == rec.patient_id
        assert info.num_frames == rec.num_frames
        if rec.fps is not None:
            assert info.fps == pytest.approx(rec.fps, rel=1e-3)
        if rec.expected_skip_reason == "":
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            assert ds.SOPClassUID == US_MULTIFRAME_SOP and ds.Modality == "US"
            assert path.name.removesuffix(".dcm") == ds.SOPInstanceUID


def test_label_balance_variety_and_awkward_cases(synth_records):
    scored = [r for r in synth_records if r.expected_skip_reason == ""]
    good = [r for r in scored if r.label == 1]
    poor = [r for r in scored if r.label == 0]
    assert abs(len(good) - len(poor)) <= 2 and len(poor) >= 10
    assert all(r.degradation == "none" for r in good)
    assert {r.degradation for r in poor} == set(DEGRADATIONS)
    assert {r.photometric for r in scored} >= {"MONOCHROME2", "RGB", "YBR_FULL_422", "YBR_FULL"}
    assert {r.transfer_syntax for r in scored} >= {
        "Explicit VR Little Endian",
        "JPEG Baseline (Process 1)",
        "RLE Lossless",
    }
    assert min(r.num_frames for r in scored) < 32
    assert len({r.fps for r in scored}) >= 3
    reasons = [r.expected_skip_reason for r in synth_records if r.expected_skip_reason]
    assert sorted(reasons) == sorted(
        ["single_frame", "single_frame", "not_ultrasound", "not_dicom", "decode_error", "empty_pixel_array"]
    )
    stills = [r for r in synth_records if r.expected_skip_reason == "single_frame"]
    assert {r.photometric for r in stills} == {"MONOCHROME2", "RGB"}


def test_expected_skip_reasons_match_the_pipeline(synth_root, synth_records):
    cfg = PreprocessConfig()
    for rec in synth_records:
        path = synth_root / rec.relative_path
        try:
            info, clip = load_clip(path, cfg, folder_name=rec.folder)
        except SkipError as err:
            assert err.reason.value == rec.expected_skip_reason, (rec.relative_path, err.detail)
            continue
        assert rec.expected_skip_reason == "", rec.relative_path
        assert clip.shape == (min(16, (rec.num_frames + 1) // 2), 112, 112, 3)
        assert info.machine_type == rec.machine_type


def test_same_seed_is_byte_identical_and_seed_matters(tmp_path):
    a = generate_dataset(tmp_path / "a", seed=3, folders=2, clips_per_folder=2)
    b = generate_dataset(tmp_path / "b", seed=3, folders=2, clips_per_folder=2)
    c = generate_dataset(tmp_path / "c", seed=4, folders=2, clips_per_folder=2, include_awkward=False)
    assert a == b
    assert _digest_tree(tmp_path / "a") == _digest_tree(tmp_path / "b")
    da, dc = _digest_tree(tmp_path / "a"), _digest_tree(tmp_path / "c")
    assert not set(da.values()) & set(dc.values())
    assert len(c) == 4 and all(r.expected_skip_reason == "" for r in c)


def test_medium_size(tmp_path):
    recs = generate_dataset(
        tmp_path, seed=1, folders=1, clips_per_folder=1, size="medium", include_awkward=False
    )
    info = read_info(tmp_path / recs[0].relative_path)
    assert (info.rows, info.columns) == (480, 640) and 40 <= info.num_frames <= 120
    with pytest.raises(ValueError):
        generate_dataset(tmp_path / "x", size="huge")


def _sector_stats(frames: np.ndarray, geo: _Geometry) -> tuple[float, float]:
    """Mean brightness and high-frequency energy (Laplacian std) inside the sector."""
    grey = frames[..., 1].astype(np.float32)
    inner = cv2.erode(geo.sector.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    lap = np.stack([cv2.Laplacian(f, cv2.CV_32F) for f in grey])
    return float(grey[:, inner].mean()), float(lap[:, inner].std())


def test_degradations_are_clearly_visible():
    geo = _Geometry(200, 260)

    def render(degradation: str) -> np.ndarray:
        spec = ClipSpec(200, 260, num_frames=8, fps=30.0, degradation=degradation)
        return render_clip(spec, np.random.default_rng(11))

    good_mean, good_hf = _sector_stats(render("none"), geo)
    stats = {d: _sector_stats(render(d), geo) for d in DEGRADATIONS}
    assert stats["low_gain"][0] < 0.2 * good_mean
    assert stats["blur"][1] < 0.3 * good_hf
    assert stats["noise"][1] > 2.0 * good_hf
    assert stats["shadowing"][0] < 0.75 * good_mean
    assert stats["truncated_sector"][0] < 0.3 * good_mean
    # the chamber moves: frames differ inside the sector
    frames = render("none")
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int))[geo.sector].mean() > 5


def test_cli_synth(tmp_path):
    from echoquality.cli import app

    runner = CliRunner()
    out = tmp_path / "tree"
    args = [
        "synth",
        "--output",
        str(out),
        "--seed",
        "2",
        "--folders",
        "1",
        "--clips-per-folder",
        "2",
        "--no-awkward",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    recs = read_manifest(out / MANIFEST_NAME)
    assert len(recs) == 2 and all((out / r.relative_path).is_file() for r in recs)
    assert runner.invoke(app, args).exit_code == 2  # refuses to overwrite without --force
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0
    assert runner.invoke(app, ["synth", "--output", str(tmp_path / "y"), "--size", "huge"]).exit_code == 2
