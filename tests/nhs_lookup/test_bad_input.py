"""Bad input to the case reader and the `batch` / `evaluate` commands (issue 9 items 5, 6, 9, 13):
encodings Excel writes, binary files, delimiters, formula cells, invisible names, files of bad rows,
unwritable outputs, gold labels outside the catalogue and files without labels."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest
from typer.testing import CliRunner

from nhs_lookup.batch_output import error_summary, errors_path
from nhs_lookup.cases import CaseFileError, iter_cases, load_cases, unknown_labels
from nhs_lookup.cli import app
from nhs_lookup.records import CaseError
from nhs_lookup.textfile import detect_encoding, safe_cell, sniff_delimiter

runner = CliRunner()
HEADER = "DATA_SOURCE,MODALITY_CODE,EXAM_CODE,EXAM_NAME\n"
ROWS = "Sité A,XR,K1,Genou gauche\nSité A,US,T1,US Thyroïde\n"


def _env(tmp_path):
    return {"NHS_LOOKUP_CACHE": str(tmp_path / "cache"), "COLUMNS": "200"}


# ------------------------------------------------------------------------------ encodings
@pytest.mark.parametrize(
    ("encoding", "bom", "expected"),
    [
        ("utf-8", b"", "utf-8"),
        ("utf-8", b"\xef\xbb\xbf", "utf-8-sig"),
        ("utf-16-le", b"\xff\xfe", "utf-16"),
        ("utf-16-be", b"\xfe\xff", "utf-16"),
        ("utf-16-le", b"", "utf-16-le"),
        ("cp1252", b"", "cp1252"),
        ("latin-1", b"", "cp1252"),
    ],
)
def test_csv_in_every_encoding_excel_writes_reads_the_same(tmp_path, encoding, bom, expected):
    path = tmp_path / "ris.csv"
    path.write_bytes(bom + (HEADER + ROWS).encode(encoding))
    assert detect_encoding(path) == expected
    errors: list[CaseError] = []
    cases = list(iter_cases(path, errors))
    assert errors == []
    assert [c.query.exam_name for c in cases] == ["Genou gauche", "US Thyroïde"]
    assert cases[0].query.data_source == "Sité A"


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_detected_from_the_header(tmp_path, delimiter):
    path = tmp_path / "ris.csv"
    text = (HEADER + "H1,CT,C1,CT Head, non contrast\n").replace(",", delimiter)
    path.write_text(text.replace(f"Head{delimiter} non", "Head non"), encoding="utf-8")
    assert sniff_delimiter(path.read_text().splitlines()[0]) == delimiter
    cases = list(iter_cases(path))
    assert [(c.query.modality_code, c.query.exam_name) for c in cases] == [("CT", "CT Head non contrast")]


def test_tsv_is_tab_separated_even_with_commas_in_names(tmp_path):
    path = tmp_path / "ris.tsv"
    path.write_text("EXAM_NAME\tMODALITY_CODE\nCT Abdo, Pelvis C+\tCT\n", encoding="utf-8")
    cases = list(iter_cases(path))
    assert [(c.query.exam_name, c.query.modality_code) for c in cases] == [("CT Abdo, Pelvis C+", "CT")]


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("sheet.xml", "<x/>")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("ris.csv", _zip_bytes(), "zip archive"),
        ("ris.json", _zip_bytes(), "zip archive"),
        ("ris.csv", bytes(range(256)) * 20, "binary content"),
        ("ris.csv", b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, "PNG"),
        ("ris.json", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        ("ris.csv", b"NAME;CODE\nx;y\n", "no EXAM_NAME column"),
    ],
)
def test_unreadable_files_are_one_line_errors(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CaseFileError, match=message) as info:
        list(iter_cases(path))
    assert "\n" not in str(info.value) and len(str(info.value)) < 400


def test_invisible_names_are_empty(tmp_path):
    path = tmp_path / "cases.json"
    names = ["\u200b", "\u200b\u200c\ufeff", " \t\u00a0", "\u202e", "CT\u200bHead"]
    path.write_text(json.dumps([{"EXAM_NAME": n} for n in names]))
    cases, errors = load_cases(path)
    assert [c.query.exam_name for c in cases] == ["CT\u200bHead"]
    assert [(e.row, e.kind) for e in errors] == [(1, "missing_name"), (2, "missing_name"), (3, "missing_name"),
                                                 (4, "missing_name")]  # fmt: skip


def test_wrong_types_are_per_row_errors(tmp_path):
    path = tmp_path / "cases.json"
    rows = [{"EXAM_NAME": {"a": 1}}, {"EXAM_NAME": "CT Head", "MODALITY_CODE": ["CT"]}, {"EXAM_NAME": "US"}]
    path.write_text(json.dumps(rows))
    cases, errors = load_cases(path)
    assert [c.query.exam_name for c in cases] == ["US"]
    assert [(e.row, e.kind) for e in errors] == [(1, "wrong_type"), (2, "wrong_type")]
    assert "MODALITY_CODE" in errors[1].message


# ------------------------------------------------------------------------------ CSV cells
@pytest.mark.parametrize("text", ['=HYPERLINK("http://x")', "+1+2", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"])
def test_formula_cells_are_neutralised(text):
    assert safe_cell(text) == "'" + text
    assert safe_cell("CT Head") == "CT Head" and safe_cell(-0.5) == -0.5 and safe_cell(None) is None


def test_batch_csv_output_neutralises_formulas(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text(HEADER + 'H1,CT,=cmd|\' /C calc\'!A0,"=HYPERLINK(""http://evil"",""CT Head"")"\n')
    out = tmp_path / "out.csv"
    res = runner.invoke(app, ["batch", str(src), str(out)], env=_env(tmp_path))
    assert res.exit_code == 0, res.output
    row = next(csv.DictReader(out.open(encoding="utf-8")))
    assert row["exam_name"].startswith("'=HYPERLINK") and row["exam_code"].startswith("'=cmd")
    for value in row.values():
        assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value


# --------------------------------------------------------------------------- batch / evaluate
def test_batch_on_binary_and_latin1_files(tmp_path):
    junk = tmp_path / "junk.csv"
    junk.write_bytes(_zip_bytes())
    res = runner.invoke(app, ["batch", str(junk), str(tmp_path / "o.csv")], env=_env(tmp_path))
    assert res.exit_code == 2 and "zip archive" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o.csv").exists()
    latin = tmp_path / "latin.csv"
    latin.write_bytes((HEADER + ROWS).encode("cp1252"))
    res = runner.invoke(app, ["batch", str(latin), str(tmp_path / "o.json")], env=_env(tmp_path))
    assert res.exit_code == 0, res.output
    assert [r["exam_name"] for r in json.loads((tmp_path / "o.json").read_text())] == [
        "Genou gauche",
        "US Thyroïde",
    ]


def test_many_bad_rows_give_a_capped_summary_and_a_full_error_file(tmp_path):
    src = tmp_path / "bad.csv"
    lines = [HEADER.strip()] + ["H1,CT,C,"] * 3000 + ["H1,CT,C," + "x" * 600] * 500 + ["H1,CT,C1,CT Head"]
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out" / "res.csv"
    res = runner.invoke(app, ["batch", str(src), str(out)], env=_env(tmp_path))
    assert res.exit_code == 1
    assert len(res.output.splitlines()) < 40, res.output
    assert "missing_name 3000" in res.output and "name_too_long 500" in res.output
    assert "3480 more bad row(s) not shown" in res.output
    listed = list(csv.DictReader(errors_path(out).open(encoding="utf-8")))
    assert len(listed) == 3500 and listed[0]["row"] == "1" and listed[-1]["kind"] == "name_too_long"
    assert len(list(csv.DictReader(out.open()))) == 1


def test_unwritable_output_fails_before_any_work(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")  # a folder cannot be created under a file, even by root
    src = tmp_path / "in.csv"
    src.write_text(HEADER + "H1,CT,C1,CT Head\n")
    res = runner.invoke(app, ["batch", str(src), str(blocker / "out.csv")], env=_env(tmp_path))
    assert res.exit_code == 2 and "cannot write" in res.output, res.output
    assert "note:" not in res.output  # the engine was never loaded
    gold = tmp_path / "gold.json"
    gold.write_text(json.dumps([{"EXAM_NAME": "CT Head", "acceptable": ["CT Head"]}]))
    res = runner.invoke(app, ["evaluate", str(gold), "--json", str(blocker / "r.json")], env=_env(tmp_path))
    assert res.exit_code == 2 and "cannot write" in res.output
    res = runner.invoke(app, ["batch", str(src), str(tmp_path)], env=_env(tmp_path))
    assert res.exit_code == 2


def test_evaluate_without_labels_exits_2(tmp_path):
    path = tmp_path / "unlabelled.json"
    path.write_text(json.dumps([{"EXAM_NAME": "CT Head"}, {"EXAM_NAME": "US Abdo"}]))
    res = runner.invoke(app, ["evaluate", str(path)], env=_env(tmp_path))
    assert res.exit_code == 2 and "0 labelled cases" in res.output


def test_gold_labels_outside_the_catalogue_are_flagged(tmp_path, sample_engine):
    row = sample_engine.catalogue.entries[0].name
    gold = [
        {"case_id": "G1", "EXAM_NAME": "anything", "acceptable": [row]},
        {"case_id": "G2", "EXAM_NAME": "CT Head", "acceptable": ["CT Head of a unicorn", row]},
        {"case_id": "G3", "EXAM_NAME": "Did not attend", "no_match": True},
    ]
    path = tmp_path / "gold.json"
    path.write_text(json.dumps(gold))
    cases, _ = load_cases(path)
    warnings = unknown_labels(cases, sample_engine.catalogue)
    assert [(w.case_id, w.label) for w in warnings] == [("G2", "CT Head of a unicorn")]
    out = tmp_path / "report.json"
    res = runner.invoke(app, ["evaluate", str(path), "--json", str(out)], env=_env(tmp_path))
    assert res.exit_code == 0, res.output
    assert "case G2" in res.output and "1 gold label(s) name no catalogue row" in res.output
    assert json.loads(out.read_text())["meta"]["unknown_gold_labels"][0]["case_id"] == "G2"


def test_error_summary_counts_by_kind():
    errors = [
        CaseError("f", i, f"bad {i}", kind="missing_name" if i % 2 else "wrong_type") for i in range(1, 8)
    ]
    lines = error_summary(errors, shown=3)
    assert lines[:3] == ["row 1: bad 1", "row 2: bad 2", "row 3: bad 3"]
    assert lines[3] == "... 4 more bad row(s) not shown"
    assert lines[4] == "bad rows by kind: missing_name 4, wrong_type 3"
