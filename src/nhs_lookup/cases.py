"""Reading case files (JSON or CSV, labelled or not) and judging answers against gold labels.

Accepted shapes, one case per item/row:
- the RIS export / sanity-test format: ``DATA_SOURCE, MODALITY_CODE, EXAM_CODE, EXAM_NAME``
  (keys case-insensitive, so ``exam_name`` works too);
- the gold format: the four fields plus ``case_id``, ``acceptable`` (list of catalogue names,
  best first; in CSV a ``|``-separated string), ``no_match`` and ``no_match_reason``;
- the seed's cleaned-output format, where ``clean_name`` is taken as the single acceptable name.

A malformed row never stops reading: it is reported as a :class:`CaseError` and skipped.
A file that cannot be parsed at all raises :class:`CaseFileError` naming the file and why.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from nhs_lookup.records import Case, CaseError, ExamQuery, LookupResult

MAX_NAME_LENGTH = 500


class CaseFileError(ValueError):
    """A case file that cannot be read at all (missing, wrong format, not a list)."""


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes", "y", "t"}


def case_from_mapping(item: dict[str, Any], *, row: int, source: str) -> Case:
    """Build a :class:`Case` from one JSON object / CSV row. Raises ``ValueError`` with the field name."""
    if not isinstance(item, dict):
        raise ValueError(f"expected an object with EXAM_NAME, got {type(item).__name__}")
    lower = {str(k).strip().lower(): v for k, v in item.items()}
    name = _clean(lower.get("exam_name", lower.get("input_exam")))
    if name is None:
        raise ValueError("field EXAM_NAME is missing or empty")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"field EXAM_NAME is longer than {MAX_NAME_LENGTH} characters")
    acceptable_raw = lower.get("acceptable")
    if acceptable_raw is None and _clean(lower.get("clean_name")):
        acceptable_raw = [lower["clean_name"]]
    if acceptable_raw is None or acceptable_raw == "":
        acceptable: tuple[str, ...] = ()
    elif isinstance(acceptable_raw, str):
        acceptable = tuple(a.strip() for a in acceptable_raw.split("|") if a.strip())
    elif isinstance(acceptable_raw, list) and all(isinstance(a, str) for a in acceptable_raw):
        acceptable = tuple(a.strip() for a in acceptable_raw if a.strip())
    else:
        raise ValueError("field acceptable must be a list of names (or a '|'-separated string)")
    no_match = _truthy(lower.get("no_match", False))
    return Case(
        query=ExamQuery(
            exam_name=name,
            modality_code=_clean(lower.get("modality_code")),
            exam_code=_clean(lower.get("exam_code")),
            data_source=_clean(lower.get("data_source")),
        ),
        case_id=_clean(lower.get("case_id")),
        acceptable=acceptable,
        no_match=no_match,
        no_match_reason=_clean(lower.get("no_match_reason")) if no_match else None,
    )


def _iter_json(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise CaseFileError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    except UnicodeDecodeError as exc:
        raise CaseFileError(f"{path}: not UTF-8 text ({exc})") from exc
    if isinstance(data, dict):
        for key in ("cases", "exams", "data"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
    if not isinstance(data, list):
        raise CaseFileError(f"{path}: expected a JSON list of cases (or an object with a 'cases' list)")
    yield from enumerate(data, start=1)


def _iter_csv(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise CaseFileError(f"{path}: cannot open ({exc})") from exc
    with handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not any(
            f and f.strip().lower() == "exam_name" for f in reader.fieldnames
        ):
            raise CaseFileError(f"{path}: CSV has no EXAM_NAME column (columns: {reader.fieldnames})")
        try:
            for row_number, row in enumerate(reader, start=1):
                if None in row:  # more cells than header columns
                    row = {k: v for k, v in row.items() if k is not None}
                yield row_number, row
        except (csv.Error, UnicodeDecodeError) as exc:
            raise CaseFileError(f"{path}: unreadable CSV after row {reader.line_num}: {exc}") from exc


def iter_cases(path: str | Path, errors: list[CaseError] | None = None) -> Iterator[Case]:
    """Stream the cases of one JSON or CSV file. Bad rows go to *errors* (if given) and are skipped."""
    p = Path(path)
    if not p.is_file():
        raise CaseFileError(f"{p}: case file not found")
    suffix = p.suffix.lower()
    if suffix == ".json":
        rows = _iter_json(p)
    elif suffix in {".csv", ".tsv", ".txt"}:
        rows = _iter_csv(p)
    else:
        raise CaseFileError(f"{p}: unsupported case file type '{suffix}' (use .json or .csv)")
    for row_number, item in rows:
        try:
            yield case_from_mapping(item, row=row_number, source=str(p))
        except ValueError as exc:
            if errors is not None:
                errors.append(CaseError(source=str(p), row=row_number, message=str(exc)))


def load_cases(paths: str | Path | Iterable[str | Path]) -> tuple[list[Case], list[CaseError]]:
    """Read every case from one or more files (or folders of .json/.csv files)."""
    if isinstance(paths, str | Path):
        paths = [paths]
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(q for q in p.iterdir() if q.suffix.lower() in {".json", ".csv"}))
        else:
            files.append(p)
    errors: list[CaseError] = []
    cases: list[Case] = []
    for f in files:
        cases.extend(iter_cases(f, errors))
    return cases, errors


def correct_rank(result: LookupResult, case: Case) -> int | None:
    """1-based rank of the first acceptable answer in the result, ``None`` if absent.

    A gold no-match case is correct at rank 1 exactly when the engine returns no match.
    Candidates are ranked best first; ``result.best`` is rank 1 when matched.
    """
    if case.no_match:
        return 1 if not result.matched else None
    if not case.acceptable:
        return None
    acceptable = {a.casefold() for a in case.acceptable}
    ranked = [c.entry.name for c in result.candidates]
    if result.best is not None and (not ranked or ranked[0] != result.best.entry.name):
        ranked.insert(0, result.best.entry.name)
    if not result.matched:
        # An explicit no-match is wrong at rank 1; alternatives may still hold the answer for top-k.
        ranked.insert(0, "\0no-match")
    for i, name in enumerate(ranked, start=1):
        if name.casefold() in acceptable:
            return i
    return None
