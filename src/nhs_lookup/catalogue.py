"""Catalogue loading: NHS.json, the NHS England / TRUD NICIP-to-SNOMED mapping (CSV or XLSX) and
RadLex-Playbook-style lists, into one :class:`CatalogueEntry` per row, parsed with the same component
parser as queries. Parsed catalogues are cached on disk (pickle), keyed by the file bytes, the parsing
code and the vocabulary files.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import pickle
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nhs_lookup.components import ParsedName, parse_name
from nhs_lookup.records import CatalogueEntry
from nhs_lookup.vocab import DATA_DIR, default_vocabulary

SAMPLE_CATALOGUE = DATA_DIR / "sample_catalogue.json"
CACHE_FORMAT = 4  # 4: parsed rows in a side file, loaded on first use
FSN_ADDED_ANATOMY = frozenset({"artery", "vein"})
LATERALITY_IDS = {"24028007": "right", "7771000": "left", "51440002": "bilateral"}


class CatalogueError(ValueError):
    """A catalogue file that cannot be loaded (message names the file, row and field)."""


@dataclass
class Catalogue:
    """Loaded catalogue rows plus their parsed names (name and FSN)."""

    entries: list[CatalogueEntry]
    parsed: list[ParsedName] = field(default_factory=list)
    parsed_fsn: list[ParsedName | None] = field(default_factory=list)
    source_path: str = ""
    fingerprint: str = ""
    _by_name: dict[str, CatalogueEntry] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_name = {e.name.casefold(): e for e in self.entries}

    def by_name(self, name: str) -> CatalogueEntry | None:
        return self._by_name.get(name.strip().casefold())

    def __len__(self) -> int:
        return len(self.entries)

    def lexicon(self) -> frozenset[str]:
        """All normalised words of the catalogue (for typo correction of queries)."""
        lex = self.__dict__.get("_lexicon")
        if lex is None:
            words: set[str] = set()
            for p in self.parsed:
                words.update(p.tokens)
            for p in self.parsed_fsn:
                if p is not None:
                    words.update(p.tokens)
            lex = self.__dict__["_lexicon"] = frozenset(w for w in words if w.isalpha())
        return lex

    # Pickles leave the parsed rows out: unpickling them was most of a fresh process's catalogue load,
    # and only an index build needs them. They come back on first use from the side file written next to
    # the cache (``_parsed_file``), or by parsing the rows again.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_lexicon"] = self.lexicon()
        state.pop("parsed", None)
        state.pop("parsed_fsn", None)
        return state

    def __getattr__(self, name: str) -> Any:
        if name in ("parsed", "parsed_fsn") and "entries" in self.__dict__:
            self._load_parsed()
            return self.__dict__[name]
        raise AttributeError(name)

    def _load_parsed(self) -> None:
        side = self.__dict__.get("_parsed_file")
        got = read_cache(Path(side)) if side else None
        if isinstance(got, tuple) and len(got) == 2 and len(got[0]) == len(self.entries):
            parsed, parsed_fsn = got
        else:
            triples = [_parse_entry(e) for e in self.entries]
            parsed, parsed_fsn = [t[1] for t in triples], [t[2] for t in triples]
        self.__dict__["parsed"] = list(parsed)
        self.__dict__["parsed_fsn"] = list(parsed_fsn)


# ----------------------------------------------------------------------------------------------- rows


def _yes(value: Any) -> bool:
    return str(value).strip().lower() in {"y", "yes", "true", "1", "t"}


def _id(value: Any, where: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise CatalogueError(f"{where}: expected a SNOMED id (digits), got {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    if not text:
        return None
    if not text.isdigit():
        raise CatalogueError(f"{where}: expected a SNOMED id (digits), got {value!r}")
    return text


def _text(value: Any, where: str, required: bool = False) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise CatalogueError(f"{where} is missing or empty")
        return None
    if not isinstance(value, str | int | float):
        raise CatalogueError(f"{where}: expected text, got {type(value).__name__}")
    return str(value).strip()


def _rows_nhs_json(data: list[Any], path: Path) -> list[CatalogueEntry]:
    entries: list[CatalogueEntry] = []
    for i, row in enumerate(data, start=1):
        where = f"{path}: row {i}"
        if not isinstance(row, dict):
            raise CatalogueError(f"{where}: expected an object, got {type(row).__name__}")
        name = _text(row.get("primary_source_name"), f"{where} field primary_source_name", required=True)
        entries.append(
            CatalogueEntry(
                row_id=len(entries),
                name=name or "",
                snomed_id=_id(row.get("snomed_concept_id"), f"{where} field snomed_concept_id"),
                fsn=_text(row.get("snomed_fsn"), f"{where} field snomed_fsn"),
                laterality_id=_id(
                    row.get("snomed_laterality_concept_id"), f"{where} field snomed_laterality_concept_id"
                ),
                laterality_fsn=_text(
                    row.get("snomed_laterality_fsn"), f"{where} field snomed_laterality_fsn"
                ),
                nicip_code=_text(row.get("nicip_code"), f"{where} field nicip_code"),
                is_diagnostic=_yes(row.get("is_diagnostic", "Y")),
                is_interventional=_yes(row.get("is_interventional", "N")),
                source="nhs",
            )
        )
    return entries


def _rows_radlex(data: list[Any], path: Path) -> list[CatalogueEntry]:
    entries: list[CatalogueEntry] = []
    for i, row in enumerate(data, start=1):
        where = f"{path}: row {i}"
        if not isinstance(row, dict):
            raise CatalogueError(f"{where}: expected an object, got {type(row).__name__}")
        name = _text(row.get("SHORT_NAME"), f"{where} field SHORT_NAME", required=True)
        long_name = _text(row.get("LONG_NAME"), f"{where} field LONG_NAME")
        modality = _text(row.get("MODALITY"), f"{where} field MODALITY")
        fsn = long_name or name
        if modality and not (fsn or "").lower().startswith(modality.lower()):
            fsn = f"{modality} {fsn}"
        entries.append(CatalogueEntry(row_id=len(entries), name=name or "", fsn=fsn, source="radlex"))
    return entries


# Header aliases for the NICIP/SNOMED mapping (compared without case, spaces or punctuation).
_HEADER_ALIASES = {
    "snomed_id": ("snomedctconceptid", "snomedconceptid", "conceptid", "snomedctid"),
    "fsn": ("snomedctfsn", "snomedfsn", "fullyspecifiedname", "snomedctfullyspecifiedname"),
    "laterality_id": (
        "snomedctconceptidoflaterality",
        "snomedconceptidoflaterality",
        "lateralityconceptid",
        "snomedctlateralityconceptid",
    ),
    "laterality_fsn": ("snomedfsnoflaterality", "snomedctfsnoflaterality", "lateralityfsn"),
    "diagnostic": ("diagnosticprocedure", "diagnostic"),
    "interventional": ("interventionalprocedure", "interventional"),
    "nicip_code": ("nicipcode", "nicip", "nicipid"),
    "name": (
        "nicipshortname",
        "nicipname",
        "nicipdescription",
        "shortname",
        "name",
        "primarysourcename",
        "nicipshortdescription",
        "description",
    ),
}


def _norm_header(h: Any) -> str:
    return re.sub(r"[^a-z0-9]", "", str(h or "").lower())


def _rows_mapping(
    header: list[Any], rows: Iterable[tuple[int, list[Any]]], path: Path
) -> list[CatalogueEntry]:
    normed = [_norm_header(h) for h in header]
    cols: dict[str, int] = {}
    for key, aliases in _HEADER_ALIASES.items():
        for alias in aliases:
            if alias in normed:
                cols[key] = normed.index(alias)
                break
    if "snomed_id" not in cols and "name" not in cols:
        raise CatalogueError(
            f"{path}: header row has no 'SNOMED CT Concept-ID' or NICIP name column (columns: {header})"
        )
    if "fsn" not in cols and "name" not in cols:
        raise CatalogueError(f"{path}: header row has no 'SNOMED CT FSN' or NICIP name column")
    entries: list[CatalogueEntry] = []
    for line, row in rows:
        where = f"{path}: row {line}"

        def get(key: str, row: list[Any] = row) -> Any:
            i = cols.get(key)
            return row[i] if i is not None and i < len(row) else None

        if all(v is None or str(v).strip() == "" for v in row):
            continue
        fsn = _text(get("fsn"), f"{where} field 'SNOMED CT FSN'")
        name = _text(get("name"), f"{where} field NICIP name") or fsn
        if not name:
            raise CatalogueError(f"{where}: field 'SNOMED CT FSN' / NICIP name is missing or empty")
        diag = get("diagnostic")
        interv = get("interventional")
        entries.append(
            CatalogueEntry(
                row_id=len(entries),
                name=name,
                snomed_id=_id(get("snomed_id"), f"{where} field 'SNOMED CT Concept-ID'"),
                fsn=fsn,
                laterality_id=_id(
                    get("laterality_id"), f"{where} field 'SNOMED CT Concept-ID of Laterality'"
                ),
                laterality_fsn=_text(get("laterality_fsn"), f"{where} field 'SNOMED FSN of Laterality'"),
                nicip_code=_text(get("nicip_code"), f"{where} field 'NICIP code'"),
                is_diagnostic=_yes(diag) if diag not in (None, "") else not _yes(interv),
                is_interventional=_yes(interv) if interv not in (None, "") else False,
                source="nicip",
            )
        )
    return entries


def _read_csv(raw: bytes, path: Path) -> list[CatalogueEntry]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    try:
        header = next(reader)
    except StopIteration as exc:
        raise CatalogueError(f"{path}: empty CSV file") from exc
    return _rows_mapping(header, ((i, r) for i, r in enumerate(reader, start=2)), path)


def _read_xlsx(path: Path) -> list[CatalogueEntry]:
    try:
        import openpyxl
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise CatalogueError(f"{path}: reading XLSX needs openpyxl (pip install openpyxl)") from exc
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for bad files
        raise CatalogueError(f"{path}: not a readable XLSX workbook ({exc})") from exc
    try:
        for ws in wb.worksheets:
            rows = ws.iter_rows(values_only=True)
            for line, header in enumerate(rows, start=1):
                normed = {_norm_header(h) for h in header}
                if normed & set(_HEADER_ALIASES["snomed_id"]) or normed & set(_HEADER_ALIASES["fsn"]):
                    data = ((line + i, list(r)) for i, r in enumerate(rows, start=1))
                    return _rows_mapping(list(header), data, path)
                if line > 20:
                    break
        raise CatalogueError(f"{path}: no sheet has a 'SNOMED CT Concept-ID' / 'SNOMED CT FSN' header row")
    finally:
        wb.close()


def read_catalogue_rows(path: str | Path) -> list[CatalogueEntry]:
    """Read one catalogue file into unparsed entries. Raises :class:`CatalogueError`."""
    p = Path(path)
    if not p.is_file():
        raise CatalogueError(f"{p}: catalogue file not found")
    suffix = p.suffix.lower()
    if suffix in {".xlsx", ".xlsm"}:
        entries = _read_xlsx(p)
    elif suffix in {".csv", ".tsv", ".txt"}:
        entries = _read_csv(p.read_bytes(), p)
    elif suffix == ".json":
        try:
            data = json.loads(p.read_text(encoding="utf-8-sig"))
        except json.JSONDecodeError as exc:
            raise CatalogueError(
                f"{p}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
            ) from exc
        except UnicodeDecodeError as exc:
            raise CatalogueError(f"{p}: not UTF-8 text ({exc})") from exc
        if isinstance(data, dict):
            data = data.get("entries", data.get("procedures"))
        if not isinstance(data, list):
            raise CatalogueError(f"{p}: expected a JSON list of catalogue rows")
        first = next((r for r in data if isinstance(r, dict)), {})
        if "SHORT_NAME" in first:
            entries = _rows_radlex(data, p)
        else:
            entries = _rows_nhs_json(data, p)
    else:
        raise CatalogueError(f"{p}: unsupported catalogue type '{suffix}' (use .json, .csv or .xlsx)")
    if not entries:
        raise CatalogueError(f"{p}: the catalogue has no rows")
    return entries


# ------------------------------------------------------------------------------------------- parsing

_FSN_TAG = re.compile(r"\s*\((procedure|regime/therapy|qualifier value)\)\s*$", re.I)


def _row_anatomy(name_anat: tuple[str, ...], fsn_anat: tuple[str, ...], vocab) -> tuple[str, ...]:
    """Row anatomy from the short name and the FSN: the FSN adds the vessel the name leaves out ("Angio
    renal": renal *artery*). Adding every FSN part was measured to cost more than it gained (FSNs name
    regions the short name deliberately leaves general)."""
    if not name_anat:
        return fsn_anat
    covered = {a for t in name_anat for a in vocab.ancestors(t)}
    extra = [t for t in fsn_anat if t in FSN_ADDED_ANATOMY and t not in covered]
    return tuple(sorted(set(name_anat) | set(extra)))


def _parse_entry(entry: CatalogueEntry) -> tuple[CatalogueEntry, ParsedName, ParsedName | None]:
    vocab = default_vocabulary()
    pn = parse_name(entry.name, None, vocab, catalogue_row=True)
    pf = parse_name(_FSN_TAG.sub("", entry.fsn), None, vocab, catalogue_row=True) if entry.fsn else None
    c = pn.components
    modality = c.modality if pn.modality_source in ("text", "hint") else None
    if modality is None and pf is not None:
        modality = pf.components.modality
    anatomy = _row_anatomy(c.anatomy, pf.components.anatomy if pf else (), vocab)
    laterality = LATERALITY_IDS.get(entry.laterality_id or "") or c.laterality
    if laterality is None and entry.laterality_fsn:
        low = entry.laterality_fsn.lower()
        laterality = (
            "bilateral" if "and" in low else "left" if "left" in low else "right" if "right" in low else None
        )
    technique = tuple(
        sorted(set(c.technique) | ({"angiography"} & set(pf.components.technique) if pf else set()))
    )
    comps = replace(
        c,
        modality=modality,
        anatomy=anatomy,
        laterality=laterality,
        technique=technique,
        interventional=c.interventional or entry.is_interventional,
        non_clinical=None,
    )
    pn = replace(pn, components=comps, modality_source="text" if modality else None)
    return replace(entry, components=comps), pn, pf


def build_catalogue(entries: list[CatalogueEntry], source_path: str = "", fingerprint: str = "") -> Catalogue:
    """Parse every row's name and FSN with the shared parser."""
    out, parsed, parsed_fsn = [], [], []
    for e in entries:
        e2, pn, pf = _parse_entry(e)
        out.append(e2)
        parsed.append(pn)
        parsed_fsn.append(pf)
    return Catalogue(out, parsed, parsed_fsn, source_path=source_path, fingerprint=fingerprint)


# --------------------------------------------------------------------------------------------- cache


def code_fingerprint() -> str:
    """Hash of the parsing code and vocabulary files: a change invalidates every cache."""
    h = hashlib.sha256(str(CACHE_FORMAT).encode())
    here = Path(__file__).resolve().parent
    for name in ("catalogue.py", "components.py", "normalize.py", "vocab.py", "records.py"):
        h.update((here / name).read_bytes())
    h.update(default_vocabulary().fingerprint.encode())
    return h.hexdigest()[:16]


def cache_dir(configured: str | Path | None = None) -> Path:
    if configured:
        return Path(configured)
    env = os.environ.get("NHS_LOOKUP_CACHE")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "nhs_lookup"


def file_fingerprint(path: Path) -> str:
    h = hashlib.sha256(path.read_bytes())
    h.update(code_fingerprint().encode())
    return h.hexdigest()[:24]


def read_cache(path: Path) -> Any | None:
    """Unpickle *path*; a missing or corrupt cache gives ``None`` (and is rebuilt by the caller)."""
    try:
        with path.open("rb") as fh:
            return pickle.load(fh)
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "rebuild", said once in the log
        logging.getLogger(__name__).warning(
            "ignoring unreadable cache %s (%s: %s)", path, type(exc).__name__, exc
        )
        return None


def write_cache(path: Path, obj: Any) -> None:
    """Atomic pickle write (temp file + rename); failures to write are ignored (cache is optional)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)  # type: ignore[possibly-undefined]
        except (OSError, UnboundLocalError):
            pass


def load_catalogue(
    path: str | Path | None = None, cache: str | Path | None = None, use_cache: bool = True
) -> Catalogue:
    """Load and parse a catalogue (default: the bundled sample), through the disk cache."""
    p = Path(path) if path else SAMPLE_CATALOGUE
    if not p.is_file():
        raise CatalogueError(f"{p}: catalogue file not found")
    fp = file_fingerprint(p)
    cpath = cache_dir(cache) / f"catalogue-{fp}.pkl"
    side = cpath.with_name(f"parsed-{fp}.pkl")
    if use_cache:
        cached = read_cache(cpath)
        if isinstance(cached, Catalogue) and cached.fingerprint == fp:
            cached.source_path = str(p)
            cached.__dict__["_parsed_file"] = str(side)
            return cached
    cat = build_catalogue(read_catalogue_rows(p), source_path=str(p), fingerprint=fp)
    if use_cache:
        write_cache(side, (cat.parsed, cat.parsed_fsn))
        write_cache(cpath, cat)
    return cat
