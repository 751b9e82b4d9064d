import csv
import json

import pytest

from nhs_lookup.catalogue import CatalogueError, load_catalogue, read_catalogue_rows

NHS_ROWS = [
    {
        "snomed_concept_id": 111111001,
        "snomed_fsn": "Plain X-ray of knee (procedure)",
        "snomed_laterality_concept_id": 7771000,
        "snomed_laterality_fsn": "Left (qualifier value)",
        "is_diagnostic": "Y",
        "is_interventional": "N",
        "primary_source_name": "XR Knee Lt",
    },
    {
        "snomed_concept_id": 111111001,
        "snomed_fsn": "Plain X-ray of knee (procedure)",
        "snomed_laterality_concept_id": 24028007,
        "snomed_laterality_fsn": "Right (qualifier value)",
        "is_diagnostic": "Y",
        "is_interventional": "N",
        "primary_source_name": "XR Knee Rt",
    },
    {
        "snomed_concept_id": 222222002,
        "snomed_fsn": "Biopsy of liver using ultrasound guidance (procedure)",
        "snomed_laterality_concept_id": "",
        "snomed_laterality_fsn": "",
        "is_diagnostic": "N",
        "is_interventional": "Y",
        "primary_source_name": "US Guided biopsy liver",
    },
]
HEADER = [
    "NICIP Code",
    "NICIP Short Name",
    "SNOMED CT Concept-ID",
    "SNOMED CT FSN",
    "SNOMED CT Concept-ID of Laterality",
    "SNOMED FSN of Laterality",
    "Diagnostic procedure",
    "Interventional Procedure",
]
MAPPING = [
    [
        "XKNEL",
        "XR Knee Lt",
        "111111001",
        "Plain X-ray of knee (procedure)",
        "7771000",
        "Left (qualifier value)",
        "Y",
        "N",
    ],
    [
        "CABDC",
        "CT Abdomen with contrast",
        "333333003",
        "Computed tomography of abdomen with contrast (procedure)",
        "",
        "",
        "Y",
        "N",
    ],
]


def _write(tmp_path, name, rows):
    p = tmp_path / name
    p.write_text(json.dumps(rows))
    return p


def test_nhs_json_rows_keep_laterality_variants(tmp_path):
    cat = load_catalogue(_write(tmp_path, "nhs.json", NHS_ROWS), cache=tmp_path / "c")
    assert len(cat) == 3
    lt, rt = cat.by_name("xr knee lt"), cat.by_name("XR Knee Rt")
    assert lt.snomed_id == rt.snomed_id == "111111001"
    assert (lt.components.laterality, rt.components.laterality) == ("left", "right")
    assert lt.components.modality == "XR" and lt.components.anatomy == ("knee",)
    biopsy = cat.by_name("US Guided biopsy liver")
    assert (
        biopsy.is_interventional and biopsy.components.interventional and biopsy.components.modality == "US"
    )


def test_nicip_csv_with_loose_headers(tmp_path):
    p = tmp_path / "nicip.csv"
    with p.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([h.upper().replace(" ", "  ") for h in HEADER])
        w.writerows(MAPPING)
    rows = read_catalogue_rows(p)
    assert [r.nicip_code for r in rows] == ["XKNEL", "CABDC"]
    assert rows[0].laterality_id == "7771000" and rows[1].name == "CT Abdomen with contrast"


def test_nicip_xlsx(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["NHS England NICIP to SNOMED CT map"])  # title row before the header
    ws.append(HEADER)
    for r in MAPPING:
        ws.append([int(v) if v.isdigit() else v for v in r])
    p = tmp_path / "nicip.xlsx"
    wb.save(p)
    cat = load_catalogue(p, cache=tmp_path / "c")
    assert cat.by_name("CT Abdomen with contrast").components.contrast == "with"
    assert cat.by_name("XR Knee Lt").snomed_id == "111111001"


def test_radlex_list(tmp_path):
    p = _write(
        tmp_path,
        "radlex.json",
        [{"SHORT_NAME": "CT Abd w", "LONG_NAME": "CT Abdomen w IV Contrast", "MODALITY": "CT"}],
    )
    cat = load_catalogue(p, cache=tmp_path / "c")
    c = cat.entries[0].components
    assert (c.modality, c.anatomy, c.contrast) == ("CT", ("abdomen",), "with")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[{]", "not valid JSON"),
        (json.dumps({"a": 1}), "expected a JSON list"),
        (json.dumps([NHS_ROWS[0], {"snomed_concept_id": 1}]), "row 2 field primary_source_name"),
        (json.dumps([dict(NHS_ROWS[0], snomed_concept_id="abc")]), "row 1 field snomed_concept_id"),
        (json.dumps([dict(NHS_ROWS[0], primary_source_name=["x"])]), "row 1 field primary_source_name"),
        (json.dumps([]), "no rows"),
    ],
)
def test_malformed_json_reports_row_and_field(tmp_path, content, message):
    p = tmp_path / "bad.json"
    p.write_text(content)
    with pytest.raises(CatalogueError, match=message):
        read_catalogue_rows(p)


def test_malformed_csv_reports_row(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text(",".join(HEADER) + "\n" + ",".join(MAPPING[0]) + "\nX,,12ab,Some FSN,,,Y,N\n")
    with pytest.raises(CatalogueError, match=r"row 3 field 'SNOMED CT Concept-ID'"):
        read_catalogue_rows(p)
    p.write_text("foo,bar\n1,2\n")
    with pytest.raises(CatalogueError, match="header"):
        read_catalogue_rows(p)


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(CatalogueError, match="not found"):
        read_catalogue_rows(tmp_path / "nope.json")
    (tmp_path / "x.txt.gz").write_text("x")
    with pytest.raises(CatalogueError, match="unsupported"):
        read_catalogue_rows(tmp_path / "x.txt.gz")


def test_cache_hit_invalidation_and_corruption(tmp_path):
    cache = tmp_path / "cache"
    p = _write(tmp_path, "nhs.json", NHS_ROWS)
    first = load_catalogue(p, cache=cache)
    files = list(cache.glob("catalogue-*.pkl"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    again = load_catalogue(p, cache=cache)
    assert (
        again.fingerprint == first.fingerprint and files[0].stat().st_mtime_ns == mtime
    )  # hit: not rewritten
    # a changed file gets a new cache entry with the new rows
    p.write_text(json.dumps(NHS_ROWS[:2]))
    changed = load_catalogue(p, cache=cache)
    assert len(changed) == 2 and changed.fingerprint != first.fingerprint
    assert len(list(cache.glob("catalogue-*.pkl"))) == 2
    # a corrupt cache file is ignored and rebuilt
    target = cache / f"catalogue-{changed.fingerprint}.pkl"
    target.write_bytes(b"not a pickle")
    rebuilt = load_catalogue(p, cache=cache)
    assert len(rebuilt) == 2 and target.read_bytes() != b"not a pickle"


def test_bundled_sample_catalogue_is_default(tmp_path):
    cat = load_catalogue(None, cache=tmp_path)
    assert 150 <= len(cat) <= 300
    mods = {e.components.modality for e in cat.entries}
    assert {"XR", "CT", "MRI", "US", "NM", "MG", "FL", "IR"} <= mods
