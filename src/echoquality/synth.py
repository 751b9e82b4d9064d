"""Synthetic echocardiography DICOM data with known quality labels.

Renders fan-shaped B-mode cines (speckle, a beating chamber-like structure, burned-in text and an ECG
trace outside the sector) and writes them as real DICOM files (Ultrasound Multi-frame Image Storage,
proper file meta) with vendor tags, several photometric interpretations and transfer syntaxes. Half of
the clips are degraded (strong noise, very low gain, shadowing/dropout, heavy blur, truncated sector)
and labelled poor (0); the rest are good (1). Awkward files (stills, CT, non-DICOM, truncated, no pixel
data, raw dataset without preamble) exercise the skip reasons.

Everything is seeded: the same seed gives byte-identical files. Layout::

    <out>/<machine>-<PatientID>/<SOPInstanceUID>   (most files have no extension)
    <out>/synth_manifest.csv
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import cv2
import numpy as np

from .dicom import normalize_machine_type

US_MULTIFRAME_SOP = "1.2.840.10008.5.1.4.1.1.3.1"
US_IMAGE_SOP = "1.2.840.10008.5.1.4.1.1.6.1"
CT_IMAGE_SOP = "1.2.840.10008.5.1.4.1.1.2"
MANIFEST_NAME = "synth_manifest.csv"
INFO_NAME = "synth_info.json"  # generator parameters and library versions

SIZES: dict[str, tuple[int, int]] = {"small": (200, 260), "medium": (480, 640)}
FRAME_RANGE: dict[str, tuple[int, int]] = {"small": (12, 40), "medium": (40, 120)}
FPS_CHOICES = (20.0, 25.0, 30.0, 40.0, 50.0, 60.0)
DEGRADATIONS = ("noise", "low_gain", "shadowing", "blur", "truncated_sector")

# (photometric, transfer syntax keyword) cycle; JPEG Baseline YBR_FULL_422 is the most common in real echo.
ENCODINGS: tuple[tuple[str, str], ...] = (
    ("YBR_FULL_422", "JPEGBaseline8Bit"),
    ("RGB", "ExplicitVRLittleEndian"),
    ("MONOCHROME2", "ExplicitVRLittleEndian"),
    ("YBR_FULL_422", "JPEGBaseline8Bit"),
    ("RGB", "RLELossless"),
    ("YBR_FULL", "ExplicitVRLittleEndian"),
)


@dataclass(frozen=True)
class Machine:
    manufacturer: str
    model: str

    @property
    def machine_type(self) -> str:
        return normalize_machine_type(self.model, None)


MACHINES: tuple[Machine, ...] = (
    Machine("Philips Medical Systems", "EPIQ 7C"),
    Machine("Philips Medical Systems", "Affiniti 70G"),
    Machine("GE Vingmed Ultrasound", "Vivid E95"),
    Machine("Philips Medical Systems", "Affiniti 50G"),
    Machine("GE Vingmed Ultrasound", "Vivid S60"),
    Machine("GE Vingmed Ultrasound", "Vivid S70"),
)


@dataclass
class SynthRecord:
    """One generated file, as written to ``synth_manifest.csv``."""

    relative_path: str
    folder: str
    patient_id: str
    machine_type: str
    label: int | None  # 1 good, 0 poor, None for files that should be skipped
    degradation: str  # "none" for good clips, "" for awkward files
    photometric: str
    transfer_syntax: str  # UID name, "" when the file has none
    num_frames: int
    fps: float | None
    expected_skip_reason: str  # "" when the file should be scored


MANIFEST_COLUMNS = tuple(f.name for f in fields(SynthRecord))


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


@dataclass
class ClipSpec:
    """Everything needed to render one cine."""

    height: int
    width: int
    num_frames: int
    fps: float
    degradation: str = "none"
    heart_rate: float = 72.0
    gain: float = 1.0
    colour_overlays: bool = True
    label_text: str = "ECHO"


class _Geometry:
    """Pixel grids and the fan-shaped sector of one image size."""

    def __init__(self, height: int, width: int, radius_frac: float = 0.80, half_angle_deg: float = 40.0):
        self.h, self.w = height, width
        self.cx, self.cy = width / 2.0, 0.06 * height
        self.radius = radius_frac * height
        self.half_angle = math.radians(half_angle_deg)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        self.xx, self.yy = xx, yy
        dx, dy = xx - self.cx, yy - self.cy
        self.r = np.sqrt(dx * dx + dy * dy)
        self.phi = np.arctan2(dx, np.maximum(dy, 1e-3))
        self.sector = (self.r <= self.radius) & (np.abs(self.phi) <= self.half_angle) & (dy > 0)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))


def _speckle(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Rayleigh speckle with mean ~1, slightly correlated like real B-mode speckle."""
    field = rng.rayleigh(scale=1.0 / math.sqrt(math.pi / 2.0), size=shape).astype(np.float32)
    return cv2.GaussianBlur(field, (0, 0), sigmaX=sigma * 1.4, sigmaY=sigma)


def _ellipse(geo: _Geometry, cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
    return ((geo.xx - cx) / ax) ** 2 + ((geo.yy - cy) / ay) ** 2


def render_clip(spec: ClipSpec, rng: np.random.Generator) -> np.ndarray:
    """Render a (T, H, W, 3) uint8 RGB cine: grey B-mode sector plus coloured overlays outside it."""
    geo = _Geometry(spec.height, spec.width)
    deg = spec.degradation
    scale = spec.height / 200.0
    sector = geo.sector.copy()
    if deg == "truncated_sector":
        sector &= geo.r <= 0.42 * geo.radius
        sector &= np.abs(geo.phi) <= math.radians(24)
    # Static anatomy: tissue texture, chamber positions (jittered per clip).
    texture = cv2.GaussianBlur(
        rng.normal(0, 1, (spec.height, spec.width)).astype(np.float32), (0, 0), 6 * scale
    )
    texture = 0.32 + 0.10 * texture / (texture.std() + 1e-6)
    lv_x = geo.cx + rng.uniform(-0.06, 0.06) * geo.radius
    lv_y = geo.cy + rng.uniform(0.50, 0.58) * geo.radius
    rv_dx = -rng.uniform(0.30, 0.36) * geo.radius
    phase0 = rng.uniform(0, 2 * math.pi)
    static_speckle = _speckle(rng, (spec.height, spec.width), 0.7 * scale)
    attenuation = 1.0 - 0.35 * np.clip(geo.r / geo.radius, 0, 1)
    shadow = np.ones((spec.height, spec.width), np.float32)
    if deg == "shadowing":
        width = rng.uniform(0.45, 0.6) * 2 * geo.half_angle
        start = rng.uniform(-geo.half_angle, geo.half_angle - width)
        shadow[(geo.phi >= start) & (geo.phi <= start + width)] = 0.04
        shadow[(geo.r > 0.30 * geo.radius) & (geo.r < 0.55 * geo.radius)] *= 0.25  # a dropout band
    ecg = _ecg_trace(spec, rng)
    frames = np.empty((spec.num_frames, spec.height, spec.width, 3), np.uint8)
    for t in range(spec.num_frames):
        time_s = t / spec.fps
        c = 0.5 * (1 - math.cos(2 * math.pi * spec.heart_rate / 60.0 * time_s + phase0))  # contraction 0..1
        ax, ay = 0.20 * geo.radius * (1 - 0.22 * c), 0.32 * geo.radius * (1 - 0.12 * c)
        e_in = _ellipse(geo, lv_x, lv_y, ax, ay)
        e_out = _ellipse(geo, lv_x, lv_y, ax * (1.55 + 0.1 * c), ay * (1.35 + 0.05 * c))
        e_rv = _ellipse(
            geo, lv_x + rv_dx, lv_y - 0.04 * geo.radius, 0.11 * geo.radius * (1 - 0.15 * c), 0.22 * geo.radius
        )
        wall = _sigmoid((1 - e_out) * 10) * _sigmoid((e_in - 1) * 10)
        blood = np.maximum(_sigmoid((1 - e_in) * 10), _sigmoid((1 - e_rv) * 10))
        refl = texture * (1 - wall) + 1.0 * wall
        refl = refl * (1 - blood) + 0.03 * blood
        speckle = 0.75 * static_speckle + 0.25 * _speckle(rng, (spec.height, spec.width), 0.7 * scale)
        img = refl * speckle * attenuation * shadow * spec.gain
        img = 255.0 * np.clip(img * 0.85, 0, 1) ** 0.8
        if deg == "noise":
            img = 0.6 * img + rng.normal(0, 70, img.shape).astype(np.float32) + 40
        elif deg == "low_gain":
            img = img * 0.10
        elif deg == "blur":
            img = cv2.GaussianBlur(img, (0, 0), 0.03 * spec.height)
        grey = np.where(sector, np.clip(img, 1, 255), 0).astype(np.uint8)
        rgb = np.repeat(grey[:, :, None], 3, axis=2)
        _draw_overlays(rgb, spec, geo, ecg, t, scale)
        frames[t] = rgb
    return frames


def _ecg_trace(spec: ClipSpec, rng: np.random.Generator) -> np.ndarray:
    """(N, 2) int32 polyline of a synthetic ECG across the bottom band of the image."""
    x0, x1 = int(0.05 * spec.width), int(0.95 * spec.width)
    xs = np.arange(x0, x1)
    seconds_per_px = 2.5 / (x1 - x0)
    beat = 60.0 / spec.heart_rate
    tt = (xs - x0) * seconds_per_px + rng.uniform(0, beat)
    ph = (tt % beat) / beat
    wave = (
        0.15 * np.exp(-(((ph - 0.15) / 0.03) ** 2))
        - 0.10 * np.exp(-(((ph - 0.27) / 0.01) ** 2))
        + 1.0 * np.exp(-(((ph - 0.30) / 0.012) ** 2))
        - 0.20 * np.exp(-(((ph - 0.33) / 0.012) ** 2))
        + 0.30 * np.exp(-(((ph - 0.55) / 0.05) ** 2))
    )
    base_y, amp = 0.95 * spec.height, 0.06 * spec.height
    ys = base_y - amp * wave
    return np.stack([xs, ys], axis=1).round().astype(np.int32)


def _draw_overlays(
    rgb: np.ndarray, spec: ClipSpec, geo: _Geometry, ecg: np.ndarray, t: int, scale: float
) -> None:
    """Burned-in text, depth marks and a sweeping ECG trace, all outside the sector."""
    text_col = (235, 220, 120) if spec.colour_overlays else (220, 220, 220)
    ecg_col = (40, 220, 60) if spec.colour_overlays else (200, 200, 200)
    font, fs, th = cv2.FONT_HERSHEY_SIMPLEX, 0.32 * scale, max(1, int(round(scale)))
    for i, line in enumerate((spec.label_text, f"HR {spec.heart_rate:.0f}", f"{spec.fps:.0f} Hz")):
        cv2.putText(rgb, line, (3, int((11 + 11 * i) * scale)), font, fs, text_col, th, cv2.LINE_AA)
    cv2.putText(
        rgb, "16cm", (int(spec.width - 34 * scale), int(11 * scale)), font, fs, text_col, th, cv2.LINE_AA
    )
    for k in range(1, 8):  # depth ticks just right of the sector edge
        r = geo.radius * k / 8
        x = int(geo.cx + r * math.sin(geo.half_angle) + 14 * scale)
        y = int(geo.cy + r * math.cos(geo.half_angle))
        cv2.circle(rgb, (x, y), max(1, int(scale)), text_col, -1)
    cv2.polylines(rgb, [ecg], False, ecg_col, th, cv2.LINE_AA)
    # Sweep: an erase gap moving with time (changes between frames, yet thin).
    span = ecg[-1, 0] - ecg[0, 0]
    cursor = int(ecg[0, 0] + (t * 7 * scale) % span)
    y_lo, y_hi = int(ecg[:, 1].min() - 2), int(ecg[:, 1].max() + 2)
    rgb[y_lo:y_hi, cursor : cursor + int(5 * scale)] = 0


# --------------------------------------------------------------------------------------------
# DICOM writing
# --------------------------------------------------------------------------------------------


def _uid(*parts: object) -> str:
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=[str(p) for p in parts]))


def _base_dataset(sop_class: str, sop_uid: str, transfer_syntax: str):
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = UID(getattr(pydicom.uid, transfer_syntax))
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = "20250101"
    ds.ContentDate = "20250101"
    ds.StudyTime = "120000"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    return ds


def write_clip(
    path: Path,
    frames_rgb: np.ndarray,
    *,
    photometric: str = "RGB",
    transfer_syntax: str = "ExplicitVRLittleEndian",
    fps: float | None = 30.0,
    patient_id: str = "SYN0000",
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    manufacturer: str = "Philips Medical Systems",
    model: str = "EPIQ 7C",
    multiframe: bool = True,
) -> Path:
    """Write (T, H, W, 3) uint8 RGB frames as an ultrasound DICOM.

    *photometric*: MONOCHROME2 (stored as grey), RGB, YBR_FULL (native) or YBR_FULL_422 (requires
    ``transfer_syntax="JPEGBaseline8Bit"``: each frame is JPEG-encoded with Pillow, quality 90, 4:2:2).
    *transfer_syntax*: a pydicom.uid keyword: ExplicitVRLittleEndian, ImplicitVRLittleEndian,
    JPEGBaseline8Bit or RLELossless. ``multiframe=False`` writes an Ultrasound Image Storage still
    from the first frame (no NumberOfFrames).
    """
    from pydicom.encaps import encapsulate
    from pydicom.pixels import convert_color_space

    frames_rgb = np.asarray(frames_rgb, np.uint8)
    if not multiframe:
        frames_rgb = frames_rgb[:1]
    t, h, w = frames_rgb.shape[:3]
    sop_uid = sop_uid or _uid("sop", patient_id, frames_rgb.shape, photometric, transfer_syntax)
    ds = _base_dataset(US_MULTIFRAME_SOP if multiframe else US_IMAGE_SOP, sop_uid, transfer_syntax)
    ds.PatientName = f"SYNTH^{patient_id}"
    ds.PatientID = patient_id
    ds.StudyInstanceUID = study_uid or _uid("study", patient_id)
    ds.SeriesInstanceUID = series_uid or _uid("series", patient_id)
    ds.Modality = "US"
    ds.Manufacturer = manufacturer
    ds.ManufacturerModelName = model
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "CARDIOLOGY"]
    ds.BurnedInAnnotation = "YES"
    ds.Rows, ds.Columns = h, w
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if multiframe:
        ds.NumberOfFrames = t
        if fps:
            ds.FrameTime = f"{1000.0 / fps:.4f}"
            ds.CineRate = int(round(fps))
            ds.FrameIncrementPointer = 0x00181063
    grey = photometric.startswith("MONOCHROME")
    ds.SamplesPerPixel = 1 if grey else 3
    ds.PhotometricInterpretation = photometric
    if not grey:
        ds.PlanarConfiguration = 0
    if grey:
        pixels = frames_rgb.mean(axis=3).round().astype(np.uint8)
        if photometric == "MONOCHROME1":
            pixels = 255 - pixels
    elif photometric == "YBR_FULL" and transfer_syntax != "JPEGBaseline8Bit":
        pixels = convert_color_space(frames_rgb, "RGB", "YBR_FULL")
    else:
        pixels = frames_rgb
    if transfer_syntax == "JPEGBaseline8Bit":
        if photometric != "YBR_FULL_422":
            raise ValueError("JPEG Baseline clips are written as YBR_FULL_422")
        ds.PixelData = encapsulate([_jpeg_bytes(f) for f in frames_rgb])
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionMethod = "ISO_10918_1"
    else:
        raw = pixels if multiframe else pixels[0]
        ds.PixelData = np.ascontiguousarray(raw).tobytes()
        ds["PixelData"].VR = "OB"
        if transfer_syntax == "RLELossless":
            from pydicom.uid import ExplicitVRLittleEndian, RLELossless

            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.compress(RLELossless, generate_instance_uid=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _jpeg_bytes(frame_rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame_rgb, "RGB").save(buf, format="JPEG", quality=90, subsampling=1)  # 1 = 4:2:2
    return buf.getvalue()


def _ts_name(keyword: str) -> str:
    import pydicom

    return getattr(pydicom.uid, keyword).name


# --------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------


def generate_dataset(
    out_dir: Path,
    seed: int = 0,
    folders: int = 6,
    clips_per_folder: int = 4,
    size: str = "small",
    include_awkward: bool = True,
) -> list[SynthRecord]:
    """Write a synthetic study tree under *out_dir* and its manifest; return the records.

    Folder ``i`` is ``<machine>-SYN<i+1:04d>``; within each folder good and poor clips are balanced
    (shuffled order), encodings cycle through :data:`ENCODINGS`, degradations through
    :data:`DEGRADATIONS`. Existing files with the same names are overwritten, others are left alone.
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
    if folders < 1 or clips_per_folder < 0:
        raise ValueError("folders must be >= 1 and clips_per_folder >= 0")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    height, width = SIZES[size]
    lo, hi = FRAME_RANGE[size]
    records: list[SynthRecord] = []
    clip_no = poor_no = 0
    folder_names: list[tuple[str, str, Machine]] = []
    for fi in range(folders):
        machine = MACHINES[fi % len(MACHINES)]
        patient_id = f"SYN{fi + 1:04d}"
        folder = f"{machine.machine_type}-{patient_id}"
        folder_names.append((folder, patient_id, machine))
        study_uid, series_uid = _uid(seed, "study", folder), _uid(seed, "series", folder)
        frng = np.random.default_rng([seed, fi, 0])
        labels = frng.permutation([1 - (k + fi) % 2 for k in range(clips_per_folder)])
        for ci in range(clips_per_folder):
            rng = np.random.default_rng([seed, fi, ci + 1])
            label = int(labels[ci])
            degradation = "none"
            if label == 0:
                degradation = DEGRADATIONS[poor_no % len(DEGRADATIONS)]
                poor_no += 1
            photometric, ts = ENCODINGS[clip_no % len(ENCODINGS)]
            clip_no += 1
            spec = ClipSpec(
                height=height,
                width=width,
                num_frames=int(rng.integers(lo, hi + 1)),
                fps=float(rng.choice(FPS_CHOICES)),
                degradation=degradation,
                heart_rate=float(rng.uniform(55, 100)),
                gain=float(rng.uniform(0.9, 1.15)),
                colour_overlays=photometric != "MONOCHROME2",
                label_text=machine.model,
            )
            frames = render_clip(spec, rng)
            sop_uid = _uid(seed, "sop", folder, ci)
            name = sop_uid + (".dcm" if (fi + ci) % 4 == 3 else "")
            write_clip(
                out_dir / folder / name,
                frames,
                photometric=photometric,
                transfer_syntax=ts,
                fps=spec.fps,
                patient_id=patient_id,
                study_uid=study_uid,
                series_uid=series_uid,
                sop_uid=sop_uid,
                manufacturer=machine.manufacturer,
                model=machine.model,
            )
            records.append(
                SynthRecord(
                    relative_path=f"{folder}/{name}",
                    folder=folder,
                    patient_id=patient_id,
                    machine_type=machine.machine_type,
                    label=label,
                    degradation=degradation,
                    photometric=photometric,
                    transfer_syntax=_ts_name(ts),
                    num_frames=spec.num_frames,
                    fps=spec.fps,
                    expected_skip_reason="",
                )
            )
    if include_awkward:
        records.extend(_write_awkward(out_dir, seed, folder_names, height, width))
    write_manifest(out_dir / MANIFEST_NAME, records)
    _write_info(out_dir / INFO_NAME, seed, folders, clips_per_folder, size, include_awkward, len(records))
    return records


def _write_info(
    path: Path, seed: int, folders: int, clips: int, size: str, awkward: bool, n_files: int
) -> None:
    """Record how the tree was made (no timestamps, so reruns stay byte-identical)."""
    import importlib.metadata
    import json

    def version(dist: str) -> str | None:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    info = {
        "generator": "echoquality.synth.generate_dataset",
        "parameters": {
            "seed": seed,
            "folders": folders,
            "clips_per_folder": clips,
            "size": size,
            "include_awkward": awkward,
        },
        "files": n_files,
        "versions": {
            d: version(d) for d in ("radiology-qc", "pydicom", "numpy", "pillow", "opencv-python-headless")
        },
    }
    path.write_text(json.dumps(info, indent=2) + "\n")


def _write_awkward(
    out_dir: Path, seed: int, folders: list[tuple[str, str, Machine]], height: int, width: int
) -> list[SynthRecord]:
    """Files that must be skipped (plus one raw, preamble-less clip that must still be scored)."""
    import pydicom

    records: list[SynthRecord] = []
    rng = np.random.default_rng([seed, 99_999])

    def where(k: int) -> tuple[str, str, Machine]:
        return folders[k % len(folders)]

    def record(folder, pid, machine_type, name, label, degradation, photometric, ts, frames, fps, reason):
        return SynthRecord(
            f"{folder}/{name}",
            folder,
            pid,
            machine_type,
            label,
            degradation,
            photometric,
            ts,
            frames,
            fps,
            reason,
        )

    def clip(num_frames: int, fps: float, colour: bool, label_text: str) -> np.ndarray:
        spec = ClipSpec(height, width, num_frames, fps, colour_overlays=colour, label_text=label_text)
        return render_clip(spec, rng)

    # 1-2. single-frame stills: MONOCHROME2 and RGB (the origin misread RGB stills as videos).
    for k, photometric in enumerate(("MONOCHROME2", "RGB")):
        folder, pid, m = where(k)
        uid = _uid(seed, "still", k)
        write_clip(
            out_dir / folder / uid,
            clip(1, 30.0, photometric == "RGB", m.model),
            photometric=photometric,
            patient_id=pid,
            sop_uid=uid,
            manufacturer=m.manufacturer,
            model=m.model,
            multiframe=False,
        )
        records.append(
            record(
                folder,
                pid,
                m.machine_type,
                uid,
                None,
                "",
                photometric,
                _ts_name("ExplicitVRLittleEndian"),
                1,
                None,
                "single_frame",
            )
        )
    # 3. a CT slice in an echo folder (happens in real exports).
    folder, pid, _ = where(2)
    uid = _uid(seed, "ct")
    ds = _base_dataset(CT_IMAGE_SOP, uid, "ExplicitVRLittleEndian")
    ds.PatientID, ds.Modality, ds.Manufacturer, ds.ManufacturerModelName = pid, "CT", "SIEMENS", "Biograph16"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = _uid(seed, "ct-study"), _uid(seed, "ct-series")
    ds.Rows = ds.Columns = 64
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.PixelData = rng.integers(0, 4096, (64, 64), dtype=np.uint16).tobytes()
    (out_dir / folder).mkdir(parents=True, exist_ok=True)
    ds.save_as(out_dir / folder / uid, enforce_file_format=True)
    records.append(
        record(
            folder,
            pid,
            "biograph16",
            uid,
            None,
            "",
            "MONOCHROME2",
            _ts_name("ExplicitVRLittleEndian"),
            1,
            None,
            "not_ultrasound",
        )
    )
    # 4. a non-DICOM file.
    folder, pid, m = where(3)
    (out_dir / folder).mkdir(parents=True, exist_ok=True)
    (out_dir / folder / "export_log.txt").write_text("Exported by SynthEcho 1.0\nstudy complete\n")
    records.append(
        record(folder, pid, folder.split("-")[0], "export_log.txt", None, "", "", "", 0, None, "not_dicom")
    )
    # 5. a truncated JPEG cine (the copy stopped half-way through the pixel data).
    folder, pid, m = where(4)
    uid = _uid(seed, "truncated")
    path = write_clip(
        out_dir / folder / uid,
        clip(40, 30.0, True, m.model),
        photometric="YBR_FULL_422",
        transfer_syntax="JPEGBaseline8Bit",
        fps=30.0,
        patient_id=pid,
        sop_uid=uid,
        manufacturer=m.manufacturer,
        model=m.model,
    )
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.35)])
    records.append(
        record(
            folder,
            pid,
            m.machine_type,
            uid,
            None,
            "",
            "YBR_FULL_422",
            _ts_name("JPEGBaseline8Bit"),
            40,
            30.0,
            "decode_error",
        )
    )
    # 6. a multi-frame header without pixel data.
    folder, pid, m = where(5)
    uid = _uid(seed, "nopixels")
    path = write_clip(
        out_dir / folder / uid,
        clip(2, 30.0, True, m.model),
        photometric="RGB",
        fps=30.0,
        patient_id=pid,
        sop_uid=uid,
        manufacturer=m.manufacturer,
        model=m.model,
    )
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.NumberOfFrames = 24
    ds.save_as(path, enforce_file_format=True)
    records.append(
        record(
            folder,
            pid,
            m.machine_type,
            uid,
            None,
            "",
            "RGB",
            _ts_name("ExplicitVRLittleEndian"),
            24,
            30.0,
            "empty_pixel_array",
        )
    )
    # 7. a raw dataset without preamble/file meta (Implicit VR LE), a good clip that must be scored.
    folder, pid, m = where(6)
    uid = _uid(seed, "raw")
    path = write_clip(
        out_dir / folder / uid,
        clip(24, 25.0, False, m.model),
        photometric="MONOCHROME2",
        transfer_syntax="ImplicitVRLittleEndian",
        fps=25.0,
        patient_id=pid,
        sop_uid=uid,
        manufacturer=m.manufacturer,
        model=m.model,
    )
    ds = pydicom.dcmread(path)
    del ds.file_meta
    ds.preamble = None
    ds.save_as(path, implicit_vr=True, little_endian=True, enforce_file_format=False)
    records.append(record(folder, pid, m.machine_type, uid, 1, "none", "MONOCHROME2", "", 24, 25.0, ""))
    return records


def write_manifest(path: Path, records: list[SynthRecord]) -> None:
    """Write records as CSV (columns :data:`MANIFEST_COLUMNS`)."""
    with Path(path).open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        for rec in records:
            row = asdict(rec)
            row["label"] = "" if rec.label is None else rec.label
            row["fps"] = "" if rec.fps is None else f"{rec.fps:g}"
            writer.writerow(row)


def read_manifest(path: Path) -> list[SynthRecord]:
    """Read ``synth_manifest.csv`` back into records."""
    out: list[SynthRecord] = []
    with Path(path).open(newline="") as fh:
        for row in csv.DictReader(fh):
            out.append(
                SynthRecord(
                    relative_path=row["relative_path"],
                    folder=row["folder"],
                    patient_id=row["patient_id"],
                    machine_type=row["machine_type"],
                    label=int(row["label"]) if row["label"] != "" else None,
                    degradation=row["degradation"],
                    photometric=row["photometric"],
                    transfer_syntax=row["transfer_syntax"],
                    num_frames=int(row["num_frames"]),
                    fps=float(row["fps"]) if row["fps"] != "" else None,
                    expected_skip_reason=row["expected_skip_reason"],
                )
            )
    return out
