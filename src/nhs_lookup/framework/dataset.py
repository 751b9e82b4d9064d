"""Streaming a data set made of one or more case files (JSON or CSV, labelled or not)."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from nhs_lookup.cases import CaseFileError, iter_cases
from nhs_lookup.records import Case, CaseError

from .split import source_of

CASE_SUFFIXES = {".json", ".csv"}


@dataclass(frozen=True)
class DatasetInfo:
    """What a first, cheap pass over the files found (no case kept in memory)."""

    files: tuple[str, ...]
    fingerprint: str  # hash of each file's path, size and content hash
    total_cases: int
    labelled_cases: int
    source_counts: Counter[str]
    errors: tuple[CaseError, ...]


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders expanded to their .json/.csv files (sorted). Missing paths raise."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            inside = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in CASE_SUFFIXES)
            if not inside:
                raise CaseFileError(f"{p}: folder holds no .json or .csv case files")
            files.extend(inside)
        elif p.is_file():
            files.append(p)
        else:
            raise CaseFileError(f"{p}: case file not found")
    return files


def iter_dataset(files: Iterable[Path], errors: list[CaseError] | None = None) -> Iterator[Case]:
    """All cases of all files, in order. Unreadable rows go to *errors*; an unreadable file raises."""
    for f in files:
        yield from iter_cases(f, errors)


def _file_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def scan_dataset(files: list[Path]) -> DatasetInfo:
    """Count cases, labelled cases and sources; fingerprint the files so a resume can check them."""
    errors: list[CaseError] = []
    counts: Counter[str] = Counter()
    total = labelled = 0
    for case in iter_dataset(files, errors):
        total += 1
        labelled += case.labelled
        counts[source_of(case)] += 1
    h = hashlib.blake2b(digest_size=16)
    for f in files:
        h.update(f"{f.name}|{f.stat().st_size}|{_file_digest(f)}\n".encode())
    return DatasetInfo(
        files=tuple(str(f) for f in files),
        fingerprint=h.hexdigest(),
        total_cases=total,
        labelled_cases=labelled,
        source_counts=counts,
        errors=tuple(errors),
    )
