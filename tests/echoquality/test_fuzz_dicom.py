"""DICOM fuzz harness: seeded mutants of real files through the real ``run_inference`` path.

Mutations of pydicom's bundled test files and of synthetic cines (``echoquality.synth.write_clip``):
truncation at random offsets, byte flips in the header and in the pixel data, absurd
NumberOfFrames/Rows/Columns/BitsAllocated/SamplesPerPixel, missing PixelData and a wrong transfer
syntax; about half are first turned into ultrasound multi-frame headers so that they reach the decoder.
Every mutant must end in ``results.csv`` exactly once, scored or with a skip reason, with no traceback.

``benchmarks/fuzz_dicom.py`` imports :func:`source_files` and :func:`write_mutants` for the larger run.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest

from echoquality.synth import US_MULTIFRAME_SOP, write_clip

sys.path.insert(0, str(Path(__file__).parent))
from _dicom_fixtures import panicking_rle_cine  # noqa: E402

#: Small files shipped inside pydicom (no download): RLE, JPEG, JPEG-LS, JPEG 2000, native, big endian.
PYDICOM_SOURCES = (
    "SC_rgb_rle_2frame.dcm",
    "MR_small_RLE.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
    "JPEG2000.dcm",
    "JPEGLSNearLossless_08.dcm",
    "SC_rgb_small_odd.dcm",
    "SC_rgb_small_odd_big_endian.dcm",
    "SC_ybr_full_422_uncompressed.dcm",
    "MR_small.dcm",
    "no_meta.dcm",
)
ABSURD_VALUES = {
    "NumberOfFrames": (0, 2147483647, 1_000_000_000, 65536),
    "Rows": (0, 1, 40000, 65535),
    "Columns": (0, 1, 40000, 65535),
    "BitsAllocated": (0, 1, 7, 12, 64, 65535),
    "SamplesPerPixel": (0, 2, 4, 65535),
}
TRANSFER_SYNTAXES = (
    "1.2.840.10008.1.2",  # implicit VR little endian
    "1.2.840.10008.1.2.1",  # explicit VR little endian
    "1.2.840.10008.1.2.2",  # explicit VR big endian
    "1.2.840.10008.1.2.1.99",  # deflated
    "1.2.840.10008.1.2.4.50",  # JPEG baseline
    "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.5",  # RLE
    "1.2.840.10008.1.2.4.100",  # MPEG-2
    "1.2.3.4.5.6.7",  # unknown
)


def source_files(folder: Path, pydicom_names: tuple[str, ...] = PYDICOM_SOURCES) -> list[Path]:
    """Seed files for mutation: pydicom's bundled test files plus four small synthetic cines."""
    from pydicom.data import get_testdata_file

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in pydicom_names:
        path = get_testdata_file(name)
        if path is not None:
            out.append(Path(path))
    frames = np.random.default_rng(7).integers(0, 255, (8, 48, 64, 3), dtype=np.uint8)
    frames[:, 10:30, 10:50] = 200  # a lit block so that the sector mask finds something
    for name, photometric, ts in (
        ("syn_rgb", "RGB", "ExplicitVRLittleEndian"),
        ("syn_mono", "MONOCHROME2", "ImplicitVRLittleEndian"),
        ("syn_jpeg", "YBR_FULL_422", "JPEGBaseline8Bit"),
        ("syn_rle", "RGB", "RLELossless"),
    ):
        out.append(write_clip(folder / name, frames, photometric=photometric, transfer_syntax=ts))
    return out


def _pixel_offset(data: bytes) -> int:
    """Byte offset of the PixelData element (or the end of the header when there is none)."""
    fh = io.BytesIO(data)
    try:
        pydicom.dcmread(fh, stop_before_pixels=True, force=True)
    except Exception:  # noqa: BLE001 - a source that does not parse is mutated as plain bytes
        return min(len(data), 512)
    return fh.tell()


def _as_ultrasound_cine(ds: pydicom.Dataset, rng: np.random.Generator) -> None:
    ds.Modality = "US"
    ds.SOPClassUID = US_MULTIFRAME_SOP
    if int(ds.get("NumberOfFrames", 1) or 1) < 2:
        ds.NumberOfFrames = int(rng.integers(2, 40))


def _rewrite(data: bytes, rng: np.random.Generator, edit: Callable[[pydicom.Dataset], None]) -> bytes:
    """Parse *data*, apply *edit* (and sometimes an ultrasound header), serialise as it was encoded."""
    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    if rng.random() < 0.5:
        _as_ultrasound_cine(ds, rng)
    edit(ds)
    buf = io.BytesIO()
    implicit, little = ds.original_encoding
    ds.save_as(buf, implicit_vr=implicit, little_endian=little, enforce_file_format=False)
    return buf.getvalue()


def _flip(data: bytes, rng: np.random.Generator, lo: int, hi: int) -> bytes:
    out = bytearray(data)
    if hi <= lo:
        return bytes(out)
    for pos in rng.integers(lo, hi, int(rng.integers(1, 9))):
        out[pos] = int(rng.integers(0, 256))
    return bytes(out)


def _set_absurd(ds: pydicom.Dataset, rng: np.random.Generator) -> None:
    name = str(rng.choice(list(ABSURD_VALUES)))
    setattr(ds, name, int(rng.choice(ABSURD_VALUES[name])))


def _wrong_syntax(ds: pydicom.Dataset, rng: np.random.Generator) -> None:
    if getattr(ds, "file_meta", None) is None:
        ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = str(rng.choice(TRANSFER_SYNTAXES))


def mutate(data: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    """One seeded mutation of *data*: (kind, mutated bytes)."""
    kind = str(
        rng.choice(
            ["truncate", "flip_header", "flip_pixels", "absurd", "no_pixels", "wrong_syntax", "us_flip"]
        )
    )
    pixel_at = _pixel_offset(data)
    try:
        if kind == "truncate":
            return kind, data[: int(rng.integers(0, len(data)))]
        if kind == "flip_header":
            return kind, _flip(data, rng, 0, pixel_at)
        if kind == "flip_pixels":
            return kind, _flip(data, rng, pixel_at, len(data))
        if kind == "absurd":
            return kind, _rewrite(data, rng, lambda ds: _set_absurd(ds, rng))
        if kind == "no_pixels":
            return kind, _rewrite(data, rng, lambda ds: ds.pop("PixelData", None))
        if kind == "wrong_syntax":
            return kind, _rewrite(data, rng, lambda ds: _wrong_syntax(ds, rng))
        cine = _rewrite(data, rng, lambda ds: _as_ultrasound_cine(ds, rng))
        return kind, _flip(cine, rng, _pixel_offset(cine), len(cine))
    except Exception:  # noqa: BLE001 - a source pydicom cannot rewrite falls back to a truncation
        return "truncate", data[: int(rng.integers(0, len(data)))]


def write_mutants(sources: list[Path], out_dir: Path, count: int, seed: int) -> dict[str, str]:
    """Write *count* mutants (round robin over *sources*) into *out_dir*; returns file name -> kind."""
    out_dir.mkdir(parents=True, exist_ok=True)
    blobs = [p.read_bytes() for p in sources]
    kinds = {}
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        k = i % len(blobs)
        kind, data = mutate(blobs[k], rng)
        name = f"m{i:04d}_{kind}_{sources[k].stem}"
        (out_dir / name).write_bytes(data)
        kinds[name] = kind
    return kinds


def read_rows(out: Path) -> list[dict[str, str]]:
    with (out / "results.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


# --------------------------------------------------------------------------- the suite's fuzz run


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return source_files(tmp_path_factory.mktemp("fuzz_sources"))


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from echoquality.model.weights import save_random_weights

    return save_random_weights(tmp_path_factory.mktemp("fuzz_weights") / "tiny.pt", "tiny", seed=0)


def _run(data: Path, out: Path, weights: Path, workers: int):
    from echoquality.config import EchoConfig
    from echoquality.inference import run_inference

    cfg = EchoConfig()
    cfg.inference.data_dir, cfg.inference.output_dir = str(data), str(out)
    cfg.inference.num_workers, cfg.inference.batch_size, cfg.inference.device = workers, 4, "cpu"
    cfg.inference.write_plots = False
    return run_inference(cfg, weights=weights, progress=False)


@pytest.mark.parametrize(("workers", "seed"), [(0, 1), (2, 2)])
def test_every_mutant_is_scored_or_skipped_once(
    tmp_path: Path, seeds: list[Path], tiny_weights: Path, workers: int, seed: int, capfd
) -> None:
    data = tmp_path / "raw" / "fuzz-FUZZ01"
    kinds = write_mutants(seeds, data, count=150, seed=seed)
    assert len(set(kinds.values())) == 7  # every kind of mutation is exercised
    summary = _run(data.parent, tmp_path / "out", tiny_weights, workers)
    rows = read_rows(tmp_path / "out")
    assert sorted(r["key"] for r in rows) == sorted(kinds)  # every mutant exactly once
    for row in rows:
        assert bool(row["score"]) != bool(row["skip_reason"]), row
        assert "Traceback" not in row["skip_detail"]
        assert max(len(v) for v in row.values()) < 1100  # the csv module reads fields up to 128 KiB
    reasons = {r["skip_reason"] for r in rows}
    assert {"", "not_dicom", "invalid_dimensions", "decode_error"} <= reasons, reasons
    assert summary.total_files == len(kinds)
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("workers", [0, 1])
def test_decoder_panic_costs_one_file(tmp_path: Path, seeds: list[Path], tiny_weights: Path, workers: int):
    """A Rust decoder panic (a BaseException) once aborted the run (PicklingError with workers)."""
    folder = tmp_path / "raw" / "epiq7c-PANIC01"
    folder.mkdir(parents=True)
    panicking_rle_cine(folder / "panic")
    (folder / "intact").write_bytes(next(p for p in seeds if p.name == "syn_rgb").read_bytes())
    _run(folder.parent, tmp_path / "out", tiny_weights, workers)
    rows = {r["key"]: r for r in read_rows(tmp_path / "out")}
    assert rows["panic"]["skip_reason"] == "decode_error"
    assert "index out of bounds" in rows["panic"]["skip_detail"]
    assert rows["intact"]["score"] and not rows["intact"]["skip_reason"]


def test_huge_error_messages_are_cut(tmp_path: Path, seeds: list[Path], monkeypatch) -> None:
    """A decoder message quoting a whole corrupt value once made a results.csv field exceed the csv
    module's 128 KiB limit, so reading the results back failed."""
    import echoquality.preprocess as pre
    from echoquality.dicom import SkipError, SkipReason
    from echoquality.inference import _Job, preprocess_job
    from echoquality.results_schema import MAX_DETAIL_CHARS

    def noisy(*_a, **_k):
        raise SkipError(SkipReason.DECODE_ERROR, "bad value " + "x" * 300_000)

    monkeypatch.setattr(pre, "load_clip", noisy)
    outcome = preprocess_job(_Job(0, str(next(p for p in seeds if p.name == "syn_rgb")), "f"))
    assert outcome.reason == "decode_error"
    assert len(outcome.detail) < MAX_DETAIL_CHARS + 50 and "300010 characters in all" in outcome.detail
