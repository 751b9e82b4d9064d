"""Frame sampling, sector mask, crop/resize, normalisation and the end-to-end clip loader."""

from __future__ import annotations

import logging
import math
from dataclasses import replace

import numpy as np
import pytest

from echoquality.config import PreprocessConfig
from echoquality.dicom import SkipError, SkipReason
from echoquality.preprocess import (
    compute_mask,
    crop_and_resize,
    crop_box,
    load_clip,
    normalize_clip,
    preprocess_file,
    sample_indices,
    sector_mask,
)
from echoquality.synth import ClipSpec, render_clip, write_clip
from echoquality.synth.render import _Geometry

CFG = PreprocessConfig()

# ------------------------------------------------------------------ sampling


def test_sample_indices_default_reference():
    assert sample_indices(100, 30.0, CFG) == list(range(0, 32, 2))
    assert sample_indices(100, 60.0, CFG) == list(range(0, 32, 2))  # fps ignored by default
    assert sample_indices(20, None, CFG) == list(range(0, 20, 2))
    assert sample_indices(1, None, CFG) == [0]
    assert sample_indices(0, None, CFG) == []
    assert sample_indices(50, None, replace(CFG, start_frame=5)) == list(range(5, 37, 2))
    assert sample_indices(5, None, replace(CFG, start_frame=5)) == []
    assert sample_indices(100, None, replace(CFG, num_frames=4, frame_stride=3)) == [0, 3, 6, 9]


def test_sample_indices_fps_aware_same_time_span():
    cfg = replace(CFG, fps_aware=True)
    assert sample_indices(200, 30.0, cfg) == list(range(0, 32, 2))
    assert sample_indices(200, 60.0, cfg) == list(range(0, 64, 4))
    assert sample_indices(200, 15.0, cfg) == list(range(16))
    # 10 fps: nearest frames, some repeated, spanning the same ~1.07 s
    idx = sample_indices(200, 10.0, cfg)
    assert len(idx) == 16 and idx == sorted(idx) and idx[-1] == round(15 * 2 * 10 / 30)
    for fps in (24.0, 44.0, 90.0):
        idx = sample_indices(1000, fps, cfg)
        times = np.array(idx) / fps
        np.testing.assert_allclose(times, np.arange(16) * 2 / 30.0, atol=0.5 / fps + 1e-9)
    # no frame-rate tag: default_fps; short clip: cut at the end
    assert sample_indices(200, None, replace(cfg, default_fps=60.0)) == list(range(0, 64, 4))
    assert sample_indices(20, 60.0, cfg) == [0, 4, 8, 12, 16]


def test_sampling_and_padding_reproduce_the_reference_tensor():
    """Reference: normalise all frames, pad to 32 zero frames, take 0:32:2. Ours: decode the sampled
    frames only and pad after normalisation. Same tensor for short and long clips."""
    rng = np.random.default_rng(0)
    mean = np.array(CFG.mean_bgr, np.float32)
    std = np.array(CFG.std_bgr, np.float32)
    for t in (7, 20, 31, 32, 50):
        clip = rng.integers(0, 256, (t, 8, 8, 3), dtype=np.uint8)
        ref = ((clip.astype(np.float32) - mean) / std).transpose(3, 0, 1, 2)
        if t < CFG.pad_to_frames:
            ref = np.concatenate([ref, np.zeros((3, CFG.pad_to_frames - t, 8, 8), np.float32)], axis=1)
        ref = ref[:, 0 : CFG.pad_to_frames : CFG.frame_stride]
        ours = normalize_clip(clip[sample_indices(t, None, CFG)], CFG)
        np.testing.assert_array_equal(ours, ref)


# ------------------------------------------------------------------ normalisation


def test_normalize_clip_values_and_padding():
    clip = np.zeros((5, 4, 4, 3), np.uint8)
    clip[..., 0], clip[..., 1], clip[..., 2] = 10, 100, 250  # B, G, R
    out = normalize_clip(clip, CFG)
    assert out.shape == (3, 16, 4, 4) and out.dtype == np.float32
    for c, value in enumerate((10, 100, 250)):
        np.testing.assert_allclose(out[c, :5], (value - CFG.mean_bgr[c]) / CFG.std_bgr[c], rtol=1e-6)
    assert not out[:, 5:].any()  # zero frames appended after normalisation
    long = normalize_clip(np.ones((20, 4, 4, 3), np.uint8), CFG)
    assert long.shape == (3, 16, 4, 4) and long[:, -1].any()
    with pytest.raises(ValueError):
        normalize_clip(np.zeros((5, 4, 4), np.uint8), CFG)


# ------------------------------------------------------------------ crop / resize


def test_crop_box_square_centre_and_zoom():
    assert crop_box(200, 260, 0.1) == (20, 180, 50, 210)
    assert crop_box(480, 640, 0.1) == (48, 432, 128, 512)
    assert crop_box(640, 480, 0.0) == (80, 560, 0, 480)


def test_crop_and_resize_shapes_and_content():
    frames = np.zeros((3, 100, 140, 3), np.uint8)
    frames[:, 40:60, 60:80] = 255  # centre square survives the crops
    frames[:, :, :20] = 200  # left band is cut by the square crop
    out = crop_and_resize(frames, CFG)
    assert out.shape == (3, 112, 112, 3) and out.dtype == np.uint8
    assert out[:, 56, 56].min() == 255
    assert out[:, :, 0].max() < 50


@pytest.mark.parametrize("shape", [(2, 10, 10, 3), (2, 8, 400, 3)])
def test_tiny_frames_raise_scaling_error(shape):
    with pytest.raises(SkipError) as err:
        crop_and_resize(np.ones(shape, np.uint8), CFG)
    assert err.value.reason is SkipReason.SCALING_ERROR


def test_bad_zoom_fraction_is_scaling_error():
    with pytest.raises(SkipError) as err:
        crop_and_resize(np.ones((2, 64, 64, 3), np.uint8), replace(CFG, zoom_fraction=0.5))
    assert err.value.reason is SkipReason.SCALING_ERROR


# ------------------------------------------------------------------ sector mask


@pytest.fixture(scope="module")
def rendered():
    spec = ClipSpec(height=200, width=260, num_frames=16, fps=30.0, label_text="EPIQ 7C")
    frames = render_clip(spec, np.random.default_rng(7))
    return frames, _Geometry(200, 260)


def test_mask_keeps_sector_and_drops_text_and_ecg(rendered):
    frames, geo = rendered
    mask = sector_mask(frames)
    assert mask.shape == (200, 260) and mask.dtype == bool
    inside = mask[geo.sector].mean()
    assert inside > 0.97, f"only {inside:.1%} of the sector kept"
    overlay = frames.max(axis=0).any(axis=2) & ~geo.sector  # text, ticks, ECG: drawn outside the sector
    assert overlay.sum() > 300
    assert mask[overlay].mean() < 0.02
    assert not mask[180:].any()  # ECG band
    assert not mask[:30, :60].any()  # burned-in text corner
    assert (mask & ~geo.sector).sum() < 0.05 * geo.sector.sum()


def test_mask_fraction_and_masked_clip_zero_outside(rendered):
    frames, geo = rendered
    result = compute_mask(frames)
    assert not result.fallback
    assert result.fraction == pytest.approx(geo.sector.mean(), rel=0.1)


def test_all_black_clip_is_masking_error():
    with pytest.raises(SkipError) as err:
        sector_mask(np.zeros((4, 32, 32, 3), np.uint8))
    assert err.value.reason is SkipReason.MASKING_ERROR


def test_static_clip_falls_back_to_whole_image_with_warning(caplog):
    frames = np.repeat(np.random.default_rng(0).integers(1, 255, (1, 40, 50, 3), dtype=np.uint8), 4, axis=0)
    with caplog.at_level(logging.WARNING, logger="echoquality.preprocess"):
        result = compute_mask(frames)
    assert result.fallback and result.mask.all() and result.fraction < 0.02
    assert "keeping the whole image" in caplog.text


def test_wrong_frame_shape_is_masking_error():
    with pytest.raises(SkipError) as err:
        sector_mask(np.zeros((4, 32, 32), np.uint8))
    assert err.value.reason is SkipReason.MASKING_ERROR


# ------------------------------------------------------------------ end to end on written files


def _tinted(frames: np.ndarray) -> np.ndarray:
    """Give the grey sector a red tint (R > G > B) so channel order can be checked."""
    out = frames.astype(np.float32)
    out[..., 1] *= 0.7
    out[..., 2] *= 0.4
    return out.astype(np.uint8)


@pytest.mark.parametrize(
    ("photometric", "ts"),
    [
        ("RGB", "ExplicitVRLittleEndian"),
        ("YBR_FULL_422", "JPEGBaseline8Bit"),
        ("YBR_FULL", "ExplicitVRLittleEndian"),
        ("RGB", "RLELossless"),
    ],
)
def test_load_clip_is_bgr_masked_and_sized(tmp_path, rendered, photometric, ts):
    frames, _ = rendered
    path = write_clip(
        tmp_path / "clip", _tinted(frames), photometric=photometric, transfer_syntax=ts, fps=30.0
    )
    info, clip = load_clip(path, CFG)
    assert info.num_frames == 16
    assert clip.shape == (8, 112, 112, 3) and clip.dtype == np.uint8
    b, g, r = (clip[..., c].astype(float).mean() for c in range(3))
    assert r > g > b and r > 1.8 * b  # BGR order, no colour-space mix-up
    tensor = normalize_clip(clip, CFG)
    assert tensor.shape == (3, 16, 112, 112) and not tensor[:, 8:].any()


def test_preprocess_file_matches_manual_pipeline(tmp_path, rendered):
    frames, _ = rendered
    path = write_clip(tmp_path / "c", frames, photometric="RGB", fps=25.0)
    info, x = preprocess_file(path, CFG)
    assert x.shape == (3, 16, 112, 112) and x.dtype == np.float32
    sampled = frames[0:16:2]
    masked = sampled[..., ::-1] * sector_mask(sampled)[None, :, :, None]
    expected = normalize_clip(crop_and_resize(np.ascontiguousarray(masked), CFG), CFG)
    np.testing.assert_allclose(x, expected, atol=1e-5)
    assert info.fps == pytest.approx(25.0, rel=1e-3)


def test_mask_switch_off_keeps_overlays(tmp_path, rendered):
    frames, _ = rendered
    path = write_clip(tmp_path / "c", frames, photometric="RGB")
    _, masked = load_clip(path, CFG)
    _, unmasked = load_clip(path, replace(CFG, mask_sector=False))
    assert unmasked.astype(int).sum() > masked.astype(int).sum()


def test_load_clip_skip_reasons(tmp_path):
    still = write_clip(tmp_path / "still", np.ones((1, 64, 64, 3), np.uint8), multiframe=False)
    with pytest.raises(SkipError) as err:
        load_clip(still, CFG)
    assert err.value.reason is SkipReason.SINGLE_FRAME
    (tmp_path / "junk").write_bytes(b"\x89PNG\r\n" + bytes(300))
    with pytest.raises(SkipError) as err:
        load_clip(tmp_path / "junk", CFG)
    assert err.value.reason is SkipReason.NOT_DICOM
    black = write_clip(tmp_path / "black", np.zeros((6, 64, 64, 3), np.uint8))
    with pytest.raises(SkipError) as err:
        load_clip(black, CFG)
    assert err.value.reason is SkipReason.MASKING_ERROR
    tiny = write_clip(
        tmp_path / "tiny", np.random.default_rng(0).integers(1, 255, (6, 12, 12, 3), dtype=np.uint8)
    )
    with pytest.raises(SkipError) as err:
        load_clip(tiny, CFG)
    assert err.value.reason is SkipReason.SCALING_ERROR
    with pytest.raises(SkipError) as err:
        load_clip(black, replace(CFG, start_frame=10))
    assert err.value.reason is SkipReason.INVALID_DIMENSIONS


def test_unexpected_exception_becomes_other_errors(tmp_path, rendered, monkeypatch):
    import echoquality.preprocess as pre

    frames, _ = rendered
    path = write_clip(tmp_path / "c", frames)

    def boom(*_a, **_k):
        raise RuntimeError("unexpected")

    monkeypatch.setattr(pre, "crop_and_resize", boom)
    with pytest.raises(SkipError) as err:
        load_clip(path, CFG)
    assert err.value.reason is SkipReason.OTHER_ERRORS and "unexpected" in err.value.detail


def test_fps_aware_loading_uses_the_frame_rate(tmp_path, rendered):
    frames, _ = rendered
    path = write_clip(tmp_path / "c", frames, photometric="RGB", fps=15.0)
    _, clip = load_clip(path, replace(CFG, fps_aware=True))
    assert clip.shape[0] == 16  # 15 fps: consecutive frames cover the reference window
    _, ref = load_clip(path, CFG)
    assert ref.shape[0] == 8
    # same source frame (2) in both; only the mask (from different sampled frames) may differ slightly
    assert math.isclose(clip[2].astype(float).mean(), ref[1].astype(float).mean(), rel_tol=0.03)


def test_static_clip_uses_valid_ultrasound_regions(tmp_path, caplog):
    frames = np.repeat(np.random.default_rng(0).integers(1, 255, (1, 64, 80, 3), dtype=np.uint8), 4, axis=0)
    result = compute_mask(frames, regions=((10, 8, 69, 55), (0, 0, 500, 500)))  # second box is out of bounds
    assert result.fallback and result.source == "regions"
    expected = np.zeros((64, 80), bool)
    expected[8:56, 10:70] = True
    np.testing.assert_array_equal(result.mask, expected)
    assert compute_mask(frames, regions=((0, 0, 500, 500),)).source == "none"
    # end to end: load_clip takes the regions from the file header
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    path = write_clip(tmp_path / "static", frames)
    ds = pydicom.dcmread(path)
    r = Dataset()
    r.RegionSpatialFormat, r.RegionDataType = 1, 1
    r.RegionLocationMinX0, r.RegionLocationMinY0, r.RegionLocationMaxX1, r.RegionLocationMaxY1 = 30, 8, 49, 55
    ds.SequenceOfUltrasoundRegions = Sequence([r])
    ds.save_as(path)
    _, clip = load_clip(path, CFG)
    # square crop of 64x80 keeps columns 8..71, zoom removes 6 px per side: columns 14..65 -> 112 px
    col = (np.arange(112) + 0.5) * (52 / 112) + 14
    outside = (col < 30 - 2) | (col > 49 + 2)  # 2 source pixels of margin for the bicubic kernel
    inside = (col > 30 + 2) & (col < 49 - 2)
    row = (np.arange(112) + 0.5) * (52 / 112) + 6  # rows 6..57 survive; the region spans rows 8..55
    rows_in = (row > 8 + 2) & (row < 55 - 2)
    assert clip[:, :, outside].max() == 0
    assert clip[:, rows_in][:, :, inside].mean() > 80  # random 1..254 content kept
