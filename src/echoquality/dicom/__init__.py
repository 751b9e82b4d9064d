"""DICOM reading for EchoQuality: detection, header metadata, eligibility, colour and frame decoding.

Design points (see docs/echoquality_preprocessing.md):

* ``header``: files are detected by content ("DICM" at offset 128, else a forced header parse), never by
  extension; metadata is read with ``stop_before_pixels`` (plus a walk of the PixelData element and item
  headers), so deciding eligibility never decodes a cine.
* ``eligibility``: skip reasons; stills and videos are told apart by NumberOfFrames and SamplesPerPixel,
  never by ``ndim``; absurd sizes are refused before anything is allocated.
* ``vendors``: the one machine-type rule (model name, else folder prefix).
* ``codecs``: decoder availability and error messages naming the plugin to install.
* ``colour``: true RGB per PhotometricInterpretation, with a small vendor quirk table.
* ``frames``: only the requested frames are decoded (``pydicom.pixels.iter_pixels(indices=...)``).

Every problem becomes a :class:`SkipError` with a :class:`SkipReason`, so a bad file never crashes a batch.
"""

from .codecs import check_decoder, codec_hint, is_decoder_failure, transfer_syntax
from .colour import COLOUR_QUIRKS, ColourPlan, ColourQuirk, colour_plan
from .eligibility import (
    REFERENCE_FRAME_PIXELS,
    ULTRASOUND_SOP_CLASSES,
    SkipError,
    SkipReason,
    check_decodable,
    check_eligible,
    decode_estimate,
    default_decode_cap,
)
from .frames import read_frames
from .header import (
    DicomHeader,
    DicomInfo,
    PixelExtent,
    frame_rate,
    info_from_dataset,
    is_dicom,
    read_header,
    read_info,
    ultrasound_regions,
)
from .vendors import machine_type_from_folder, normalize_machine_type

__all__ = [
    "COLOUR_QUIRKS",
    "REFERENCE_FRAME_PIXELS",
    "ULTRASOUND_SOP_CLASSES",
    "ColourPlan",
    "ColourQuirk",
    "DicomHeader",
    "DicomInfo",
    "PixelExtent",
    "SkipError",
    "SkipReason",
    "check_decodable",
    "check_decoder",
    "check_eligible",
    "codec_hint",
    "colour_plan",
    "decode_estimate",
    "default_decode_cap",
    "frame_rate",
    "info_from_dataset",
    "is_decoder_failure",
    "is_dicom",
    "machine_type_from_folder",
    "normalize_machine_type",
    "read_frames",
    "read_header",
    "read_info",
    "transfer_syntax",
    "ultrasound_regions",
]
