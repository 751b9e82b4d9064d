import json

from typer.testing import CliRunner

from nhs_lookup.cli import app
from nhs_lookup.vocab import DATA_DIR

runner = CliRunner()


def _env(tmp_path):
    return {"NHS_LOOKUP_CACHE": str(tmp_path / "cache"), "COLUMNS": "160"}


def test_evaluate_command_on_sample_cases(tmp_path):
    out = tmp_path / "report.json"
    res = runner.invoke(
        app, ["evaluate", str(DATA_DIR / "sample_cases.json"), "--json", str(out)], env=_env(tmp_path)
    )
    assert res.exit_code == 0, res.output
    assert "top-1 accuracy" in res.output and "calibration" in res.output
    data = json.loads(out.read_text())
    assert data["n_cases"] >= 30 and 0.0 <= data["top1_accuracy"] <= 1.0
    assert "by_modality" in data and "errors" in data and data["meta"]["catalogue"]


def test_lookup_command_json(tmp_path):
    res = runner.invoke(
        app, ["lookup", "CT Abdo/Pelvis C+", "--modality", "CT", "--json"], env=_env(tmp_path)
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert (
        data["clean_name"] == "CT Abdomen and pelvis with contrast"
        and data["components"]["contrast"] == "with"
    )


def test_batch_reports_bad_rows_and_processes_the_rest(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text(
        "DATA_SOURCE,MODALITY_CODE,EXAM_CODE,EXAM_NAME\nA,XR,K1,Knee Left\nA,CT,X,\nA,US,T1,US Thyroid\n"
    )
    out = tmp_path / "out.csv"
    res = runner.invoke(app, ["batch", str(src), str(out)], env=_env(tmp_path))
    assert res.exit_code == 1  # one bad row
    assert "row 2" in res.output
    lines = out.read_text().strip().splitlines()
    assert len(lines) == 3 and "XR Knee Lt" in lines[1]
    # refuses to overwrite without --force
    again = runner.invoke(app, ["batch", str(src), str(out)], env=_env(tmp_path))
    assert again.exit_code == 2
    jout = tmp_path / "out.json"
    ok = runner.invoke(app, ["batch", str(DATA_DIR / "sample_cases.json"), str(jout)], env=_env(tmp_path))
    assert ok.exit_code == 0 and len(json.loads(jout.read_text())) >= 30


def test_bad_catalogue_is_a_usage_error(tmp_path):
    bad = tmp_path / "cat.json"
    bad.write_text("{oops")
    res = runner.invoke(app, ["lookup", "CT Head", "--catalogue", str(bad)], env=_env(tmp_path))
    assert res.exit_code == 2 and "not valid JSON" in res.output
