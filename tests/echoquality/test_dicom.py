"""DICOM detection, metadata, eligibility and colour-correct frame decoding."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    MPEG2MPML,
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    ExplicitVRLittleEndian,
    generate_uid,
)

from echoquality.dicom import (
    SkipError,
    SkipReason,
    check_eligible,
    frame_rate,
    is_dicom,
    normalize_machine_type,
    read_frames,
    read_info,
)
from echoquality.synth import US_MULTIFRAME_SOP, write_clip

sys.path.insert(0, str(Path(__file__).parent))
from _dicom_fixtures import panicking_rle_cine  # noqa: E402


def _dataset(
    pixels: np.ndarray, photometric: str, *, bits_stored: int = 8, signed: bool = False, **extra
) -> Dataset:
    """A native (uncompressed) US multi-frame dataset around *pixels* (T, H, W[, 3])."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(US_MULTIFRAME_SOP)
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = US_MULTIFRAME_SOP
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.PatientID = "T1"
    ds.NumberOfFrames = pixels.shape[0]
    ds.Rows, ds.Columns = pixels.shape[1:3]
    ds.SamplesPerPixel = 3 if pixels.ndim == 4 else 1
    ds.PhotometricInterpretation = photometric
    if pixels.ndim == 4:
        ds.PlanarConfiguration = extra.pop("planar", 0)
    allocated = 8 if bits_stored <= 8 else 16
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = allocated, bits_stored, bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    for key, value in extra.items():
        setattr(ds, key, value)
    ds.PixelData = pixels.tobytes()
    return ds


def _save(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def _marked_frames(t: int = 5, h: int = 24, w: int = 32) -> np.ndarray:
    """RGB frames whose content identifies the frame: frame i has value 10*i+5 in a corner block."""
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 255, (t, h, w, 3), dtype=np.uint8)
    for i in range(t):
        frames[i, :4, :4] = 10 * i + 5
    return frames


# ------------------------------------------------------------------ detection and metadata


def test_is_dicom_by_content_not_extension(tmp_path):
    frames = _marked_frames()
    dicom_txt = write_clip(tmp_path / "looks_like.txt", frames)
    no_ext = write_clip(tmp_path / "1.2.3.4", frames)
    (tmp_path / "scan.dcm").write_bytes(b"\x00" * 128 + b"NOPE" + b"random junk" * 50)
    (tmp_path / "notes").write_text("hello\n")
    assert is_dicom(dicom_txt) and is_dicom(no_ext)
    assert not is_dicom(tmp_path / "scan.dcm")
    assert not is_dicom(tmp_path / "notes")
    assert not is_dicom(tmp_path)  # a directory
    assert not is_dicom(tmp_path / "missing")


def test_raw_dataset_without_preamble_is_detected_and_decoded(tmp_path):
    frames = _marked_frames()
    path = write_clip(tmp_path / "x", frames, photometric="RGB", transfer_syntax="ImplicitVRLittleEndian")
    ds = pydicom.dcmread(path)
    del ds.file_meta
    ds.preamble = None
    ds.save_as(path, implicit_vr=True, little_endian=True, enforce_file_format=False)
    assert path.read_bytes()[128:132] != b"DICM"
    assert is_dicom(path)
    info = read_info(path)
    assert info.transfer_syntax is None and info.num_frames == 5
    np.testing.assert_array_equal(read_frames(path, [4, 1], info), frames[[4, 1]])


@pytest.mark.parametrize(
    ("model", "folder", "expected"),
    [
        ("EPIQ 7C", None, "epiq7c"),
        ("Affiniti 70G", "whatever-1", "affiniti70g"),
        ("Vivid E95", None, "vivide95"),
        ("Vivid S60", None, "vivids60"),
        (None, "epiq7-Epiq7-2-9", "epiq7"),
        ("", "Vivide95-VIVIDE95-022578-7", "vivide95"),
        ("  ", "nodashfolder", "unknown"),
        (None, None, "unknown"),
    ],
)
def test_normalize_machine_type(model, folder, expected):
    assert normalize_machine_type(model, folder) == expected


def test_read_info_fields(tmp_path):
    frames = _marked_frames(t=7)
    folder = tmp_path / "affiniti70g-P42"
    path = write_clip(
        folder / "1.2.3",
        frames,
        photometric="YBR_FULL_422",
        transfer_syntax="JPEGBaseline8Bit",
        fps=50.0,
        patient_id="P42",
        manufacturer="Philips",
        model="Affiniti 70G",
    )
    info = read_info(path)
    assert info.path == path
    assert (info.modality, info.manufacturer, info.model, info.machine_type) == (
        "US",
        "Philips",
        "Affiniti 70G",
        "affiniti70g",
    )
    assert info.patient_id == "P42" and info.sop_class_uid == US_MULTIFRAME_SOP
    assert info.sop_uid and info.study_uid
    assert (info.num_frames, info.rows, info.columns, info.samples_per_pixel) == (7, 24, 32, 3)
    assert info.photometric == "YBR_FULL_422"
    assert info.transfer_syntax == "JPEG Baseline (Process 1)"
    assert info.bits_stored == 8
    assert info.fps == pytest.approx(50.0, rel=1e-3)


def test_machine_type_falls_back_to_folder_prefix(tmp_path):
    ds = _dataset(np.zeros((2, 8, 8), np.uint8), "MONOCHROME2")
    folder = tmp_path / "vivids70-VIVIDS70-11"
    folder.mkdir()
    path = _save(ds, folder / "f")
    assert read_info(path).machine_type == "vivids70"
    assert read_info(path, folder_name="other").machine_type == "unknown"


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({"FrameTime": "33.3333"}, 30.0),
        ({"FrameTimeVector": ["0", "20", "20", "20"]}, 50.0),
        ({"CineRate": 25}, 25.0),
        ({"RecommendedDisplayFrameRate": 60}, 60.0),
        ({"FrameTime": "0", "CineRate": 24}, 24.0),  # invalid FrameTime is ignored
        ({"FrameTime": "40", "CineRate": 99}, 25.0),  # FrameTime wins
        ({}, None),
    ],
)
def test_frame_rate_tags(tags, expected):
    ds = Dataset()
    for key, value in tags.items():
        setattr(ds, key, value)
    fps = frame_rate(ds)
    assert fps == (pytest.approx(expected, rel=1e-3) if expected is not None else None)


# ------------------------------------------------------------------ eligibility


def _info_of(tmp_path, ds: Dataset, name="f"):
    return read_info(_save(ds, tmp_path / name))


def test_eligible_cine_passes(tmp_path):
    check_eligible(_info_of(tmp_path, _dataset(np.zeros((3, 8, 8), np.uint8), "MONOCHROME2")))


def test_missing_modality_with_ultrasound_sop_class_is_eligible(tmp_path):
    ds = _dataset(np.zeros((3, 8, 8), np.uint8), "MONOCHROME2")
    del ds.Modality
    check_eligible(_info_of(tmp_path, ds))


def test_not_ultrasound(tmp_path):
    ds = _dataset(np.zeros((3, 8, 8), np.uint8), "MONOCHROME2")
    ds.Modality = "CT"
    with pytest.raises(SkipError) as err:
        check_eligible(_info_of(tmp_path, ds))
    assert err.value.reason is SkipReason.NOT_ULTRASOUND and "CT" in err.value.detail


def test_single_frame_rgb_still_is_not_a_video(tmp_path):
    """The origin read an (H, W, 3) still as H frames of W x 3 pixels; we use NumberOfFrames/SamplesPerPixel."""
    path = write_clip(tmp_path / "still", _marked_frames(t=1, h=40, w=3), photometric="RGB", multiframe=False)
    info = read_info(path)
    assert (info.num_frames, info.samples_per_pixel, info.rows, info.columns) == (1, 3, 40, 3)
    with pytest.raises(SkipError) as err:
        check_eligible(info)
    assert err.value.reason is SkipReason.SINGLE_FRAME
    assert read_frames(path, [0], info).shape == (1, 40, 3, 3)


def test_invalid_dimensions(tmp_path):
    ds = _dataset(np.zeros((3, 8, 8), np.uint8), "MONOCHROME2")
    ds.Rows = 0
    with pytest.raises(SkipError) as err:
        check_eligible(_info_of(tmp_path, ds))
    assert err.value.reason is SkipReason.INVALID_DIMENSIONS


def test_not_dicom_and_unreadable(tmp_path):
    (tmp_path / "a.dcm").write_text("not dicom")
    with pytest.raises(SkipError) as err:
        read_info(tmp_path / "a.dcm")
    assert err.value.reason is SkipReason.NOT_DICOM
    with pytest.raises(SkipError) as err:
        read_info(tmp_path)
    assert err.value.reason is SkipReason.NOT_DICOM


def test_skip_error_is_picklable():
    import pickle

    err = pickle.loads(pickle.dumps(SkipError(SkipReason.DECODE_ERROR, "needs x")))
    assert err.reason is SkipReason.DECODE_ERROR and err.detail == "needs x"


# ------------------------------------------------------------------ decoding by photometric


def test_monochrome2_replicated_to_rgb(tmp_path):
    grey = np.arange(3 * 8 * 8, dtype=np.uint8).reshape(3, 8, 8)
    out = read_frames(_save(_dataset(grey, "MONOCHROME2"), tmp_path / "m"), [0, 2])
    assert out.shape == (2, 8, 8, 3) and out.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], grey[[0, 2]])


def test_monochrome1_is_inverted(tmp_path):
    grey = np.array([[[0, 100], [200, 255]]] * 2, np.uint8)
    out = read_frames(_save(_dataset(grey, "MONOCHROME1"), tmp_path / "m1"), [1])
    np.testing.assert_array_equal(out[0, ..., 1], 255 - grey[1])


@pytest.mark.parametrize(("bits", "signed"), [(12, False), (16, False), (12, True)])
def test_more_than_8_bits_scaled_to_8(tmp_path, bits, signed):
    top = 2**bits - 1
    if signed:
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        values = np.array([[lo, 0], [hi, hi // 2]], np.int16)
        expected = np.array([[0, 128], [255, 191]], np.uint8)
    else:
        values = np.array([[0, top // 2 + 1], [top, top // 4]], np.uint16)
        expected = np.array([[0, 128], [255, 64]], np.uint8)
    pixels = np.stack([values, values])
    out = read_frames(
        _save(_dataset(pixels, "MONOCHROME2", bits_stored=bits, signed=signed), tmp_path / "h"), [0]
    )
    assert out.dtype == np.uint8
    np.testing.assert_allclose(out[0, ..., 0].astype(int), expected.astype(int), atol=1)


def test_rgb_16_bit_scaled(tmp_path):
    pixels = np.zeros((2, 4, 4, 3), np.uint16)
    pixels[..., 0] = 65535
    pixels[..., 2] = 32768
    out = read_frames(_save(_dataset(pixels, "RGB", bits_stored=16), tmp_path / "rgb16"), [1])
    assert tuple(out[0, 0, 0]) == (255, 0, 128)


@pytest.mark.parametrize("planar", [0, 1])
def test_rgb_both_planar_configurations(tmp_path, planar):
    frames = _marked_frames()
    stored = frames if planar == 0 else np.ascontiguousarray(frames.transpose(0, 3, 1, 2))
    ds = _dataset(frames, "RGB", planar=planar)
    ds.PixelData = stored.tobytes()
    out = read_frames(_save(ds, tmp_path / f"p{planar}"), [0, 3])
    np.testing.assert_array_equal(out, frames[[0, 3]])


def test_ybr_full_native_becomes_rgb(tmp_path):
    frames = _marked_frames()
    path = write_clip(tmp_path / "ybr", frames, photometric="YBR_FULL")
    out = read_frames(path, [2])
    assert np.abs(out.astype(int) - frames[[2]].astype(int)).max() <= 2


def _grey_and_red_clip(t: int = 4) -> np.ndarray:
    """Frames with a grey ramp on the left and a saturated red block on the right."""
    frames = np.zeros((t, 64, 96, 3), np.uint8)
    ramp = np.linspace(20, 235, 48).astype(np.uint8)
    frames[:, :, :48] = ramp[None, None, :, None]
    frames[:, 16:48, 56:88] = (200, 30, 30)
    return frames


def test_jpeg_ybr_full_422_grey_stays_grey_and_red_stays_red(tmp_path):
    """Guards against the double YBR->RGB conversion that fed the network a green picture."""
    path = write_clip(
        tmp_path / "jpeg",
        _grey_and_red_clip(),
        photometric="YBR_FULL_422",
        transfer_syntax="JPEGBaseline8Bit",
    )
    out = read_frames(path, [0, 3]).astype(int)
    grey = out[:, 4:-4, 4:44]
    assert np.abs(grey[..., 0] - grey[..., 1]).max() <= 4
    assert np.abs(grey[..., 1] - grey[..., 2]).max() <= 4
    assert np.abs(grey[..., 1] - _grey_and_red_clip()[0, 4:-4, 4:44, 1]).mean() < 3
    red = out[:, 24:40, 64:80].reshape(-1, 3).mean(axis=0)
    assert red[0] > 170 and red[1] < 60 and red[2] < 60


def test_rle_roundtrip(tmp_path):
    frames = _marked_frames()
    path = write_clip(tmp_path / "rle", frames, photometric="RGB", transfer_syntax="RLELossless")
    assert read_info(path).transfer_syntax == "RLE Lossless"
    np.testing.assert_array_equal(read_frames(path, [1, 4]), frames[[1, 4]])


def _palette_dataset(indices: np.ndarray, lut_bits: int) -> tuple[Dataset, np.ndarray]:
    n = 256
    rng = np.random.default_rng(3)
    lut8 = rng.integers(0, 256, (n, 3)).astype(np.uint16)
    ds = _dataset(indices, "PALETTE COLOR")
    stored = lut8 * 257 if lut_bits == 16 else lut8
    for i, colour in enumerate(("Red", "Green", "Blue")):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [n, 0, lut_bits])
        ds[f"{colour}PaletteColorLookupTableDescriptor"].VR = "US"
        setattr(ds, f"{colour}PaletteColorLookupTableData", stored[:, i].astype("<u2").tobytes())
    return ds, lut8.astype(np.uint8)


@pytest.mark.parametrize("lut_bits", [8, 16])
def test_palette_color_lut_applied(tmp_path, lut_bits):
    idx = np.random.default_rng(4).integers(0, 256, (3, 6, 7), dtype=np.uint8)
    ds, lut = _palette_dataset(idx, lut_bits)
    out = read_frames(_save(ds, tmp_path / "pal"), [2])
    np.testing.assert_array_equal(out[0], lut[idx[2]])


def test_frame_selection_order_and_duplicates(tmp_path):
    frames = _marked_frames(t=6)
    for name, kwargs in {
        "native": {"photometric": "RGB"},
        "jpeg": {"photometric": "YBR_FULL_422", "transfer_syntax": "JPEGBaseline8Bit"},
    }.items():
        path = write_clip(tmp_path / name, frames, **kwargs)
        out = read_frames(path, [5, 0, 5, 2])
        assert out.shape == (4, 24, 32, 3)
        corner = out[:, 1, 1].astype(int).mean(axis=1)
        np.testing.assert_allclose(corner, [55, 5, 55, 25], atol=6)


def test_frame_index_out_of_range(tmp_path):
    path = write_clip(tmp_path / "c", _marked_frames(t=3))
    with pytest.raises(SkipError) as err:
        read_frames(path, [0, 3])
    assert err.value.reason is SkipReason.INVALID_DIMENSIONS


# ------------------------------------------------------------------ decode failures


def test_missing_pixel_data_is_empty_pixel_array(tmp_path):
    ds = _dataset(np.zeros((3, 8, 8), np.uint8), "MONOCHROME2")
    del ds.PixelData
    with pytest.raises(SkipError) as err:
        read_frames(_save(ds, tmp_path / "nopix"), [0])
    assert err.value.reason is SkipReason.EMPTY_PIXEL_ARRAY


def test_truncated_jpeg_cine_is_decode_error(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (12, 48, 64, 3), dtype=np.uint8)
    path = write_clip(tmp_path / "t", frames, photometric="YBR_FULL_422", transfer_syntax="JPEGBaseline8Bit")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    info = read_info(path)  # the header is intact
    with pytest.raises(SkipError) as err:
        read_frames(path, range(0, 12, 2), info)
    assert err.value.reason is SkipReason.DECODE_ERROR
    assert "JPEG Baseline" in err.value.detail


def test_video_transfer_syntax_names_the_problem(tmp_path):
    ds = _dataset(np.zeros((3, 8, 8, 3), np.uint8), "YBR_PARTIAL_420")
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + b"\x00" * 60])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    with pytest.raises(SkipError) as err:
        read_frames(_save(ds, tmp_path / "mpeg"), [0])
    assert err.value.reason is SkipReason.DECODE_ERROR
    assert "MPEG2" in err.value.detail and "ffmpeg" in err.value.detail


def test_missing_codec_names_transfer_syntax_and_plugin(tmp_path, monkeypatch):
    path = write_clip(
        tmp_path / "j", _marked_frames(), photometric="YBR_FULL_422", transfer_syntax="JPEGBaseline8Bit"
    )
    fake = types.SimpleNamespace(is_available=False, missing_dependencies=[("pillow", ["pillow"])])
    monkeypatch.setattr(pydicom.pixels, "get_decoder", lambda uid: fake)
    with pytest.raises(SkipError) as err:
        read_frames(path, [0])
    assert err.value.reason is SkipReason.DECODE_ERROR
    assert "JPEG Baseline (Process 1)" in err.value.detail and "Pillow" in err.value.detail


def test_native_ybr_full_422_becomes_rgb(tmp_path):
    """Uncompressed YBR_FULL_422 stores Y0 Y1 Cb Cr per pixel pair; decoded once to true RGB."""
    from pydicom.pixels import convert_color_space

    frames = np.zeros((2, 8, 8, 3), np.uint8)
    frames[:, :, :4] = 120
    frames[:, :, 4:] = (200, 30, 30)
    ybr = convert_color_space(frames, "RGB", "YBR_FULL")
    packed = np.stack(
        [ybr[:, :, 0::2, 0], ybr[:, :, 1::2, 0], ybr[:, :, 0::2, 1], ybr[:, :, 0::2, 2]], axis=-1
    )
    ds = _dataset(frames, "YBR_FULL_422")
    ds.PixelData = np.ascontiguousarray(packed, np.uint8).tobytes()
    out = read_frames(_save(ds, tmp_path / "y422"), [1]).astype(int)
    assert np.abs(out[0] - frames[1].astype(int)).max() <= 2


def test_ultrasound_regions_are_sanity_checked(tmp_path):
    from pydicom.sequence import Sequence

    def region(fmt, x0, y0, x1, y1):
        r = Dataset()
        r.RegionSpatialFormat, r.RegionDataType = fmt, 1
        r.RegionLocationMinX0, r.RegionLocationMinY0, r.RegionLocationMaxX1, r.RegionLocationMaxY1 = (
            x0,
            y0,
            x1,
            y1,
        )
        return r

    ds = _dataset(np.zeros((2, 40, 60), np.uint8), "MONOCHROME2")
    ds.SequenceOfUltrasoundRegions = Sequence(
        [
            region(1, 5, 4, 50, 30),  # fine
            region(1, 84, 31, 595, 414),  # coordinates of a bigger frame: rejected
            region(4, 0, 30, 59, 39),  # waveform (not 2D): ignored
            region(1, 10, 10, 60, 40),  # max = Columns/Rows (off by one): clipped
        ]
    )
    info = read_info(_save(ds, tmp_path / "r"))
    assert info.us_regions == ((5, 4, 50, 30), (10, 10, 59, 39))


# ------------------------------------------------------------------ hardening (issue 9)


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"NumberOfFrames": 2147483647}, "NumberOfFrames 2147483647"),
        ({"Rows": 65535}, "PixelData holds 4096 bytes"),
        ({"Rows": 65535, "Columns": 65535}, "decode cap"),
        ({"BitsAllocated": 64}, "BitsAllocated 64"),
        ({"SamplesPerPixel": 4}, "SamplesPerPixel 4"),
    ],
)
def test_absurd_native_header_is_invalid_dimensions_before_allocating(tmp_path, fields, words):
    from echoquality.config import PreprocessConfig
    from echoquality.preprocess import load_clip

    ds = _dataset(np.full((4, 32, 32), 100, np.uint8), "MONOCHROME2")
    for field, value in fields.items():
        setattr(ds, field, value)
    path = _save(ds, tmp_path / "absurd")
    before = _rss_mb()
    with pytest.raises(SkipError) as err:
        load_clip(path, PreprocessConfig())
    assert err.value.reason is SkipReason.INVALID_DIMENSIONS, err.value.detail
    assert words in err.value.detail
    assert _rss_mb() - before < 200  # the 2**31-frame header once drove a process to ~21 GB


def test_encapsulated_frame_count_checked_against_fragments(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    path = write_clip(tmp_path / "j", frames, photometric="YBR_FULL_422", transfer_syntax="JPEGBaseline8Bit")
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = 2147483647
    ds.save_as(path)
    info = read_info(path)
    assert info.pixels.fragments == 4 and not info.pixels.truncated
    with pytest.raises(SkipError) as err:
        read_frames(path, [0, 2], info)
    assert err.value.reason is SkipReason.INVALID_DIMENSIONS
    assert "NumberOfFrames 2147483647" in err.value.detail and "4 fragment(s)" in err.value.detail


def test_decode_cap_is_configurable(tmp_path):
    path = _save(_dataset(np.full((4, 64, 64), 100, np.uint8), "MONOCHROME2"), tmp_path / "c")
    assert read_frames(path, [0, 2]).shape == (2, 64, 64, 3)
    with pytest.raises(SkipError) as err:
        read_frames(path, [0, 2], max_bytes=10_000)
    assert err.value.reason is SkipReason.INVALID_DIMENSIONS and "decode cap" in err.value.detail


def test_decoder_panic_is_a_decode_error(tmp_path):
    path = panicking_rle_cine(tmp_path / "panic")
    with pytest.raises(SkipError) as err:
        read_frames(path, [0])
    assert err.value.reason is SkipReason.DECODE_ERROR
    assert "RLE Lossless" in err.value.detail and "index out of bounds" in err.value.detail


@pytest.mark.parametrize(
    "content",
    [b"\x00" * 128 + b"DICM", b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\x04\x00"],
)
def test_preamble_only_is_not_dicom(tmp_path, content):
    path = tmp_path / "preamble.dcm"
    path.write_bytes(content)
    with pytest.raises(SkipError) as err:
        read_info(path)
    assert err.value.reason is SkipReason.NOT_DICOM


def test_vendor_colour_quirk_table_is_applied(tmp_path):
    from echoquality.dicom import COLOUR_QUIRKS, ColourQuirk, colour_plan

    ds = _dataset(np.full((2, 4, 4), 10, np.uint8), "MONOCHROME2", Manufacturer="Acme Ultrasound")
    quirk = ColourQuirk("acme", photometric="MONOCHROME1", note="writes inverted grey")
    assert colour_plan(ds).to_rgb(ds.pixel_array[0])[0, 0, 0] == 10
    assert colour_plan(ds, (quirk,)).to_rgb(ds.pixel_array[0])[0, 0, 0] == 245
    assert all(isinstance(q, ColourQuirk) for q in COLOUR_QUIRKS)


def test_header_is_read_once_per_file(tmp_path, monkeypatch):
    import echoquality.dicom.frames as frames_mod
    import echoquality.preprocess as pre
    from echoquality.config import PreprocessConfig
    from echoquality.dicom import read_header

    frames = np.random.default_rng(2).integers(0, 255, (6, 40, 40, 3), dtype=np.uint8)
    path = write_clip(tmp_path / "c", frames)
    calls = []

    def counting(p):
        calls.append(p)
        return read_header(p)

    monkeypatch.setattr(frames_mod, "read_header", counting)
    monkeypatch.setattr(pre, "read_header", counting)
    pre.load_clip(path, PreprocessConfig())
    assert len(calls) == 1
    pre.load_clip(path, PreprocessConfig(), header=read_header(path))
    assert len(calls) == 1  # a header passed along is not read again


def test_huge_header_text_is_cut(tmp_path):
    """A flipped length field once swallowed the pixel data into Manufacturer (5 MB), which then made
    results.csv unreadable with the csv module's default field limit."""
    ds = _dataset(np.zeros((3, 8, 8), np.uint8), "MONOCHROME2")
    ds.Manufacturer = "M" * 200_000
    info = read_info(_save(ds, tmp_path / "big"))
    assert "MMMM" in info.manufacturer and len(info.manufacturer) <= 260
