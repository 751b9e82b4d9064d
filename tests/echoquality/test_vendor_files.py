"""Real vendor files shipped with pydicom and pydicom-data (read offline from the package folders).

Files are addressed by name inside the installed packages (never ``get_testdata_files(pattern)``,
which tries the network). Tests needing pydicom-data skip when it is not installed.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np
import pydicom
import pytest

from echoquality.config import PreprocessConfig
from echoquality.dicom import SkipError, SkipReason, check_eligible, read_frames, read_info
from echoquality.preprocess import compute_mask, load_clip, preprocess_file

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def _pydicom_data_dir() -> Path | None:
    try:
        dist = importlib.metadata.distribution("pydicom-data")
    except importlib.metadata.PackageNotFoundError:
        return None
    folder = Path(str(dist.locate_file("data_store/data")))
    return folder if folder.is_dir() else None


DATA_DIR = _pydicom_data_dir()


def pydicom_file(name: str) -> Path:
    path = PYDICOM_FILES / name
    if not path.is_file():
        pytest.skip(f"{name} not shipped with this pydicom version")
    return path


def data_file(name: str) -> Path:
    if DATA_DIR is None:
        pytest.skip("pydicom-data is not installed (pip install pydicom-data)")
    path = DATA_DIR / name
    if not path.is_file():
        pytest.skip(f"{name} not in this pydicom-data version")
    return path


def _skip_reason(path: Path) -> str:
    try:
        check_eligible(read_info(path))
    except SkipError as err:
        return err.reason.value
    return ""


def _assert_grey_stays_grey(path: Path, indices: list[int]) -> None:
    """Where the stored YCbCr is neutral (Cb, Cr ~ 128) the decoded RGB must be grey."""
    rgb = read_frames(path, indices).astype(int)
    for k, idx in enumerate(indices):
        ycc = pydicom.pixels.pixel_array(str(path), index=idx, raw=True).astype(int)
        neutral = (np.abs(ycc[..., 1] - 128) <= 2) & (np.abs(ycc[..., 2] - 128) <= 2) & (ycc[..., 0] > 20)
        assert neutral.sum() > 1000
        frame = rgb[k][neutral]
        # decoders differ by a few levels at chroma edges (4:2:2 upsampling); a YBR mix-up is ~100 off
        for a, b in ((0, 1), (1, 2)):
            diff = np.abs(frame[:, a] - frame[:, b])
            assert np.percentile(diff, 99) <= 4 and diff.mean() < 1.0 and diff.max() <= 12
        assert np.abs(frame[:, 1] - ycc[..., 0][neutral]).mean() < 2


def _assert_channels_balanced(clip_or_tensor: np.ndarray, axis: int, tol: float) -> None:
    means = clip_or_tensor.mean(axis=tuple(i for i in range(clip_or_tensor.ndim) if i != axis))
    assert np.ptp(means) < tol, means


# ------------------------------------------------------------------ scored cines


def test_sonosite_ybr_jpeg_cine():
    path = pydicom_file("examples_ybr_color.dcm")
    info = read_info(path)
    assert (info.num_frames, info.photometric, info.modality) == (30, "YBR_FULL_422", "US")
    assert info.transfer_syntax == "JPEG Baseline (Process 1)"
    assert info.fps == pytest.approx(30.0, rel=1e-3)
    assert info.us_regions == ()  # its region refers to a 640x480 frame, the image is 320x240: rejected
    assert _skip_reason(path) == ""
    _assert_grey_stays_grey(path, [0, 15, 29])
    info, clip = load_clip(path, PreprocessConfig())
    assert clip.shape == (15, 112, 112, 3)
    _assert_channels_balanced(clip.astype(float), axis=3, tol=1.5)  # not the green picture
    assert 5 < clip.mean() < 60


def test_color3d_120_frame_cine():
    path = data_file("color3d_jpeg_baseline.dcm")
    info = read_info(path)
    assert (info.num_frames, info.rows, info.columns) == (120, 480, 640)
    assert info.us_regions == ((84, 31, 595, 414),)
    assert _skip_reason(path) == ""
    _assert_grey_stays_grey(path, [0, 60])
    frames = read_frames(path, list(range(0, 120, 8)), info)
    result = compute_mask(frames)
    assert not result.fallback and 0.2 < result.fraction < 0.6
    assert not result.mask[:30].any() and not result.mask[-40:].any()  # header text and bottom toolbar
    _, tensor = preprocess_file(path, PreprocessConfig())
    assert tensor.shape == (3, 16, 112, 112)
    _assert_channels_balanced(tensor, axis=0, tol=0.05)


# ------------------------------------------------------------------ stills and other vendors


def test_philips_epiq_jpeg_lossless_still():
    path = data_file("JPGLosslessP14SV1_1s_1f_8b.dcm")
    info = read_info(path)
    assert info.machine_type == "epiq7c" and "Philips" in (info.manufacturer or "")
    assert info.transfer_syntax.startswith("JPEG Lossless")
    frame = read_frames(path, [0], info)[0].astype(int)
    assert frame.shape == (768, 1024, 3)
    assert (frame[..., 0] == frame[..., 1]).all() and (frame[..., 1] == frame[..., 2]).all()
    assert frame.max() > 100
    assert _skip_reason(path) == "single_frame"


@pytest.mark.parametrize("name", ["US1_UNCR.dcm", "examples_rgb_color.dcm"])
def test_rgb_stills_decode_and_are_single_frame(name):
    path = data_file(name) if name.startswith("US1") else pydicom_file(name)
    info = read_info(path)
    assert info.samples_per_pixel == 3 and info.photometric == "RGB"
    frame = read_frames(path, [0], info)[0]
    np.testing.assert_array_equal(frame, pydicom.dcmread(path).pixel_array)
    assert _skip_reason(path) == "single_frame"


@pytest.mark.parametrize(
    ("name", "tol"), [("US1_J2KR.dcm", 0), ("US1_J2KI.dcm", 3.0), ("examples_jpeg2k.dcm", 0)]
)
def test_jpeg2000_matches_uncompressed_original(name, tol):
    """US1_J2K* (YBR_RCT / YBR_ICT) are JPEG 2000 encodings of US1_UNCR (RGB): same colours."""
    path = data_file(name) if name.startswith("US1") else pydicom_file(name)
    reference = read_frames(data_file("US1_UNCR.dcm"), [0])[0].astype(float)
    frame = read_frames(path, [0])[0].astype(float)
    assert np.abs(frame - reference).mean() <= tol
    assert _skip_reason(path) == "single_frame"


def _lut_reference(path: Path) -> np.ndarray:
    ds = pydicom.dcmread(path)
    rgb = pydicom.pixels.apply_color_lut(ds.pixel_array, ds)
    if rgb.dtype != np.uint8:
        rgb = np.clip(np.rint(rgb / 257.0), 0, 255).astype(np.uint8)
    return rgb


def test_palette_still():
    path = pydicom_file("examples_palette.dcm")
    frame = read_frames(path, [0])[0]
    np.testing.assert_array_equal(frame, _lut_reference(path))
    assert frame.max() > 150
    assert _skip_reason(path) == "single_frame"


def test_palette_two_frame_cine_native_and_rle_agree():
    plain = data_file("OBXXXX1A_2frame.dcm")
    rle = data_file("OBXXXX1A_rle_2frame.dcm")
    a, b = read_frames(plain, [0, 1]), read_frames(rle, [1, 0])
    np.testing.assert_array_equal(a, b[::-1])
    np.testing.assert_array_equal(a, _lut_reference(plain))
    # NumberOfFrames 2 (declared as a single-frame SOP class): scored, not a still
    assert read_info(plain).num_frames == 2 and _skip_reason(plain) == ""
    _, clip = load_clip(plain, PreprocessConfig())
    assert clip.shape == (1, 112, 112, 3)


def test_aloka_16_bit_palette():
    path = data_file("gdcm-US-ALOKA-16.dcm")
    info = read_info(path)
    assert info.bits_stored == 16 and info.photometric == "PALETTE COLOR"
    frame = read_frames(path, [0], info)[0]
    assert frame.dtype == np.uint8 and frame.shape == (480, 640, 3)
    np.testing.assert_array_equal(frame, _lut_reference(path))
    assert 20 < frame.max() <= 255 and frame.mean() > 5
    assert _skip_reason(path) == "single_frame"


def test_planar_configurations_agree():
    planar1, planar0 = data_file("color-pl.dcm"), data_file("color-px.dcm")
    assert pydicom.dcmread(planar1, stop_before_pixels=True).PlanarConfiguration == 1
    np.testing.assert_array_equal(read_frames(planar1, [0]), read_frames(planar0, [0]))


def test_big_endian_rgb():
    path = pydicom_file("ExplVR_BigEnd.dcm")
    frame = read_frames(path, [0])[0]
    np.testing.assert_array_equal(frame, pydicom.dcmread(path).pixel_array)


def test_non_ultrasound_modalities_are_skipped():
    path = pydicom_file("CT_small.dcm")
    assert _skip_reason(path) == SkipReason.NOT_ULTRASOUND.value
