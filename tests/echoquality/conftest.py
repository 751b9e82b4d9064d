"""Shared EchoQuality fixtures: one small synthetic DICOM tree per test session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synth_records_and_root(tmp_path_factory: pytest.TempPathFactory):
    from echoquality.synth import generate_dataset

    root = tmp_path_factory.mktemp("synth_tree")
    records = generate_dataset(
        root, seed=0, folders=6, clips_per_folder=4, size="small", include_awkward=True
    )
    return root, records


@pytest.fixture(scope="session")
def synth_root(synth_records_and_root) -> Path:
    """Root of a small generated tree: <root>/<machine>-<PatientID>/<files> + synth_manifest.csv.

    6 folders x 4 scorable clips (half poor) + awkward files (stills, CT, non-DICOM, truncated,
    no pixel data, raw preamble-less clip). Session-scoped: do not modify it in tests.
    """
    return synth_records_and_root[0]


@pytest.fixture(scope="session")
def synth_records(synth_records_and_root):
    """The manifest records (list[echoquality.synth.SynthRecord]) of ``synth_root``."""
    return synth_records_and_root[1]
