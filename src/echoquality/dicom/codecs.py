"""Transfer syntaxes and decoders: which plugin decodes what, availability, and decode errors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .eligibility import SkipError, SkipReason

if TYPE_CHECKING:  # pragma: no cover
    from pydicom.dataset import Dataset


def transfer_syntax(ds: Dataset) -> Any:
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    return uid


_CODEC_HINTS: list[tuple[tuple[str, ...], str]] = [
    (
        ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"),
        "Pillow, pylibjpeg + pylibjpeg-libjpeg, or python-gdcm",
    ),
    (("1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"), "pylibjpeg + pylibjpeg-libjpeg, or python-gdcm"),
    (
        ("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"),
        "pyjpegls, pylibjpeg + pylibjpeg-libjpeg, or python-gdcm",
    ),
    (
        (
            "1.2.840.10008.1.2.4.90",
            "1.2.840.10008.1.2.4.91",
            "1.2.840.10008.1.2.4.201",
            "1.2.840.10008.1.2.4.202",
            "1.2.840.10008.1.2.4.203",
        ),
        "pylibjpeg + pylibjpeg-openjpeg, Pillow, or python-gdcm",
    ),
    (("1.2.840.10008.1.2.5",), "pylibjpeg + pylibjpeg-rle (or pydicom's built-in RLE decoder)"),
]
PILLOW_FIRST = frozenset({"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"})
_VIDEO_PREFIXES = ("1.2.840.10008.1.2.4.10", "1.2.840.10008.1.2.4.11")  # MPEG-2 / MPEG-4 / HEVC


def codec_hint(transfer_syntax_uid: str | None) -> str:
    """The plugin(s) needed to decode a transfer syntax, for error messages."""
    uid = str(transfer_syntax_uid or "")
    for uids, hint in _CODEC_HINTS:
        if uid in uids:
            return hint
    if uid.startswith(_VIDEO_PREFIXES):
        return "a video decoder; pydicom 3 cannot decode MPEG/H.264/HEVC - convert the cine with ffmpeg/dcmtk first"
    return "a pydicom pixel-data plugin supporting it"


def ts_label(ds: Dataset) -> str:
    ts = transfer_syntax(ds)
    if ts is None:
        return "unknown transfer syntax (no file meta)"
    return f"{ts.name} ({ts})" if ts.name != str(ts) else str(ts)


def decode_error(ds: Dataset, exc: BaseException) -> SkipError:
    ts = transfer_syntax(ds)
    text = str(exc)
    if isinstance(exc, MemoryError):
        return SkipError(SkipReason.OTHER_ERRORS, f"out of memory decoding {ts_label(ds)}")
    if isinstance(exc, AttributeError) and "no pixel data" in text.lower():
        return SkipError(SkipReason.EMPTY_PIXEL_ARRAY, f"no pixel data: {text}")
    # A decoder was available (checked before): the data itself is bad, typically a truncated copy.
    return SkipError(
        SkipReason.DECODE_ERROR,
        f"cannot decode {ts_label(ds)} pixel data (truncated or corrupt file?; codecs: {codec_hint(ts)}): {text}",
    )


def check_decoder(ds: Dataset) -> None:
    """Fail fast, with the plugin to install, when no decoder is available for the transfer syntax."""
    from pydicom.pixels import get_decoder

    ts = transfer_syntax(ds)
    if ts is None:
        return
    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        raise SkipError(
            SkipReason.DECODE_ERROR,
            f"{ts_label(ds)} needs {codec_hint(ts)}: no pydicom decoder exists for it",
        ) from None
    if not decoder.is_available:
        missing = "; ".join(f"{name}: {', '.join(deps)}" for name, deps in decoder.missing_dependencies)
        raise SkipError(
            SkipReason.DECODE_ERROR,
            f"{ts_label(ds)} needs {codec_hint(ts)} (no decoding plugin installed; missing {missing})",
        )


def is_decoder_failure(exc: BaseException) -> bool:
    """True for errors a decoder raises on bad data: ordinary exceptions and Rust/pyo3 panics
    (``pyo3_runtime.PanicException`` derives from BaseException, not Exception)."""
    if isinstance(exc, Exception):
        return True
    return type(exc).__name__ == "PanicException" or type(exc).__module__ == "pyo3_runtime"
