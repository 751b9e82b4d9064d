"""Reading case files (JSON or CSV, labelled or not) and judging answers against gold labels.

Accepted shapes, one case per item/row:
- the RIS export / sanity-test format: ``DATA_SOURCE, MODALITY_CODE, EXAM_CODE, EXAM_NAME``
  (keys case-insensitive, so ``exam_name`` works too);
- the gold format: the four fields plus ``case_id``, ``acceptable`` (list of catalogue names,
  best first; in CSV a ``|``-separated string), ``no_match`` and ``no_match_reason``;
- the seed's cleaned-output format, where ``clean_name`` is taken as the single acceptable name.

Files are read as UTF-8 (with or without BOM), UTF-16 or cp1252 and CSV delimiters (``,`` ``;`` tab
``|``) are detected from the header (:mod:`nhs_lookup.textfile`); ``.tsv`` is tab-separated.
A malformed row never stops reading: it is reported as a :class:`CaseError` and skipped.
A file that cannot be parsed at all (binary, a zip renamed .csv, JSON nested too deeply) raises
:class:`CaseFileError` with a one-line message naming the file and why.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nhs_lookup.records import Case, CaseError, ExamQuery, LookupResult
from nhs_lookup.textfile import TextFileError, has_visible_text, open_text, read_text, sniff_delimiter

MAX_NAME_LENGTH = 500


class CaseFileError(ValueError):
    """A case file that cannot be read at all (missing, wrong format, not a list)."""


class CaseRowError(ValueError):
    """One unreadable row; ``kind`` groups errors in summaries (``missing_name``, ``wrong_type``, ...)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _clean(value: Any, field: str = "value") -> str | None:
    """Stripped text, or ``None`` when empty or invisible (zero-width spaces, controls only)."""
    if value is None:
        return None
    if isinstance(value, dict | list):
        kind = "an object" if isinstance(value, dict) else "a list"
        raise CaseRowError("wrong_type", f"field {field} must be text, got {kind}")
    text = str(value).strip()
    return text if text and has_visible_text(text) else None


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes", "y", "t"}


def _acceptable(lower: dict[str, Any]) -> tuple[str, ...]:
    raw = lower.get("acceptable")
    if raw is None and _clean(lower.get("clean_name"), "clean_name"):
        raw = [lower["clean_name"]]
    if raw is None or raw == "":
        return ()
    if isinstance(raw, str):
        return tuple(a.strip() for a in raw.split("|") if a.strip())
    if isinstance(raw, list) and all(isinstance(a, str) for a in raw):
        return tuple(a.strip() for a in raw if a.strip())
    raise CaseRowError("wrong_type", "field acceptable must be a list of names (or a '|'-separated string)")


def case_from_mapping(item: dict[str, Any], *, row: int, source: str) -> Case:
    """Build a :class:`Case` from one JSON object / CSV row. Raises :class:`CaseRowError` (a
    ``ValueError``) naming the field."""
    if not isinstance(item, dict):
        raise CaseRowError("not_an_object", f"expected an object with EXAM_NAME, got {type(item).__name__}")
    lower = {str(k).strip().lower(): v for k, v in item.items()}
    name = _clean(lower.get("exam_name", lower.get("input_exam")), "EXAM_NAME")
    if name is None:
        raise CaseRowError("missing_name", "field EXAM_NAME is missing or empty")
    if len(name) > MAX_NAME_LENGTH:
        raise CaseRowError("name_too_long", f"field EXAM_NAME is longer than {MAX_NAME_LENGTH} characters")
    no_match = _truthy(lower.get("no_match", False))
    return Case(
        query=ExamQuery(
            exam_name=name,
            modality_code=_clean(lower.get("modality_code"), "MODALITY_CODE"),
            exam_code=_clean(lower.get("exam_code"), "EXAM_CODE"),
            data_source=_clean(lower.get("data_source"), "DATA_SOURCE"),
        ),
        case_id=_clean(lower.get("case_id"), "case_id"),
        acceptable=_acceptable(lower),
        no_match=no_match,
        no_match_reason=_clean(lower.get("no_match_reason"), "no_match_reason") if no_match else None,
    )


def _iter_json(path: Path) -> Iterator[tuple[int, Any]]:
    text = read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CaseFileError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    except RecursionError:
        raise CaseFileError(f"{path}: JSON nested too deeply to be a case file") from None
    if isinstance(data, dict):
        for key in ("cases", "exams", "data"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
    if not isinstance(data, list):
        raise CaseFileError(f"{path}: expected a JSON list of cases (or an object with a 'cases' list)")
    yield from enumerate(data, start=1)


def _iter_csv(path: Path, name_column: str = "exam_name") -> Iterator[tuple[int, Any]]:
    with open_text(path) as handle:
        try:
            header = handle.readline()
        except UnicodeDecodeError as exc:
            raise CaseFileError(f"{path}: not {handle.encoding} text ({exc.reason})") from None
        delimiter = "\t" if path.suffix.lower() == ".tsv" else sniff_delimiter(header)
        handle.seek(0)
        reader = csv.DictReader(handle, delimiter=delimiter)
        try:
            fieldnames = reader.fieldnames
        except csv.Error as exc:
            raise CaseFileError(f"{path}: unreadable CSV header: {exc}") from None
        if not fieldnames or not any(f and f.strip().lower() == name_column.lower() for f in fieldnames):
            shown = [f[:40] for f in (fieldnames or [])[:10]]
            wanted = "EXAM_NAME" if name_column == "exam_name" else repr(name_column)
            raise CaseFileError(
                f"{path}: CSV has no {wanted} column (columns: {shown}, delimiter {delimiter!r}); "
                "say which column holds the exam name with --name-column"
            )
        try:
            for row_number, row in enumerate(reader, start=1):
                if None in row:  # more cells than header columns
                    row = {k: v for k, v in row.items() if k is not None}
                yield row_number, row
        except (csv.Error, UnicodeDecodeError) as exc:
            reason = getattr(exc, "reason", None) or str(exc)
            raise CaseFileError(f"{path}: unreadable CSV after row {reader.line_num}: {reason}") from None


CASE_SUFFIXES = (".json", ".csv", ".tsv", ".txt")


def rename_columns(item: Any, columns: Mapping[str, str] | None) -> Any:
    """*item* with the site's column names mapped to ours (``{"exam_name": "Procedure"}``)."""
    if not columns or not isinstance(item, dict):
        return item
    lower = {str(k).strip().lower(): v for k, v in item.items()}
    for ours, theirs in columns.items():
        if theirs.strip().lower() in lower:
            lower[ours] = lower.pop(theirs.strip().lower())
    return lower


def iter_cases(
    path: str | Path, errors: list[CaseError] | None = None, columns: Mapping[str, str] | None = None
) -> Iterator[Case]:
    """Stream the cases of one JSON, CSV or TSV file (encoding and delimiter detected). Bad rows go to
    *errors* (if given) and are skipped; a file that cannot be read raises :class:`CaseFileError`.
    *columns* names the file's own columns for our fields (e.g. ``{"exam_name": "Procedure"}``)."""
    p = Path(path)
    if not p.is_file():
        raise CaseFileError(f"{p}: case file not found")
    suffix = p.suffix.lower()
    if suffix == ".json":
        rows = _iter_json(p)
    elif suffix in CASE_SUFFIXES:
        rows = _iter_csv(p, (columns or {}).get("exam_name", "exam_name"))
    else:
        raise CaseFileError(f"{p}: unsupported case file type '{suffix}' (use .json, .csv or .tsv)")
    try:
        for row_number, item in rows:
            try:
                case = case_from_mapping(rename_columns(item, columns), row=row_number, source=str(p))
            except ValueError as exc:
                if errors is not None:
                    kind = getattr(exc, "kind", "invalid_row")
                    errors.append(CaseError(source=str(p), row=row_number, message=str(exc), kind=kind))
                continue
            yield case
    except TextFileError as exc:
        raise CaseFileError(str(exc)) from None


def load_cases(
    paths: str | Path | Iterable[str | Path], columns: Mapping[str, str] | None = None
) -> tuple[list[Case], list[CaseError]]:
    """Read every case from one or more files (or folders of .json/.csv files); *columns* as in
    :func:`iter_cases`."""
    if isinstance(paths, str | Path):
        paths = [paths]
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(q for q in p.iterdir() if q.suffix.lower() in {".json", ".csv", ".tsv"}))
        else:
            files.append(p)
    errors: list[CaseError] = []
    cases: list[Case] = []
    for f in files:
        cases.extend(iter_cases(f, errors, columns))
    return cases, errors


@dataclass(frozen=True)
class LabelWarning:
    """A gold label naming a row that is not in the catalogue (the case can never be judged correct)."""

    case_id: str | None
    exam_name: str
    label: str

    def message(self) -> str:
        who = f"case {self.case_id}" if self.case_id else f"'{self.exam_name}'"
        return f"{who}: acceptable '{self.label}' is not a row of the catalogue"


def unknown_labels(cases: Iterable[Case], catalogue: Any) -> list[LabelWarning]:
    """Gold labels that name no catalogue row (``catalogue.by_name`` is case-insensitive)."""
    return [
        LabelWarning(c.case_id, c.query.exam_name, name)
        for c in cases
        for name in c.acceptable
        if catalogue.by_name(name) is None
    ]


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
