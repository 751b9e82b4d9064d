"""``echoquality.weights``: the stable import path of :mod:`echoquality.model.weights`.

The code lives in the model package (hashes, sidecar notes, the verified download); inference and
older scripts import it from here. New code imports ``echoquality.model.weights``.
"""

from echoquality.model.weights import (
    CHUNK,
    DownloadError,
    download_weights,
    is_reference,
    save_random_weights,
    sha256_of,
    sidecar_path,
    weights_note,
    write_sidecar,
)

__all__ = [
    "CHUNK",
    "DownloadError",
    "download_weights",
    "is_reference",
    "save_random_weights",
    "sha256_of",
    "sidecar_path",
    "weights_note",
    "write_sidecar",
]
