"""Machine type of a file: the ONE place for the model-name / folder-name rule.

The token is the normalised ManufacturerModelName ("EPIQ 7C" -> "epiq7c"); without one, the study folder's
prefix before the first '-' (the DICOM organiser's ``<machine>-<PatientID>`` convention); else "unknown".
"""

from __future__ import annotations

import re

_MODEL_CLEAN = re.compile(r"[^a-z0-9]+")


def normalize_machine_type(model: str | None, folder_name: str | None) -> str:
    """Machine type token: normalised ManufacturerModelName ("EPIQ 7C" -> "epiq7c"), else the folder
    prefix before the first '-' (the origin's convention), else "unknown"."""
    if model:
        token = _MODEL_CLEAN.sub("", str(model).lower())
        if token:
            return token
    if folder_name and "-" in folder_name:
        prefix = folder_name.split("-", 1)[0].strip().lower()
        if prefix:
            return prefix
    return "unknown"


def machine_type_from_folder(folder_name: str | None) -> str:
    """The folder part of the rule alone (results read back without header metadata)."""
    return normalize_machine_type(None, folder_name)
