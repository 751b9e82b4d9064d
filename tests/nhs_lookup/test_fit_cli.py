"""`nhs-lookup fit` -> model file -> `--model`, `evaluate --cv`, and refitting from review decisions."""

import json

from typer.testing import CliRunner

from nhs_lookup.cli import app
from nhs_lookup.vocab import DATA_DIR

runner = CliRunner()
SAMPLE = str(DATA_DIR / "sample_cases.json")
# A site writes "qx" for knee.
SHORTHAND = [
    {"DATA_SOURCE": "Site", "MODALITY_CODE": "XR", "EXAM_CODE": "Q1", "EXAM_NAME": "XR qx Lt", "acceptable": ["XR Knee Lt"]},
    {"DATA_SOURCE": "Site", "MODALITY_CODE": "XR", "EXAM_CODE": "Q2", "EXAM_NAME": "qx (R)", "acceptable": ["XR Knee Rt"]},
    {"DATA_SOURCE": "Site", "MODALITY_CODE": "XR", "EXAM_CODE": "Q3", "EXAM_NAME": "XR qx both", "acceptable": ["XR Knee Both"]},
]  # fmt: skip
UNSEEN = ["qx right 2 views", "--modality", "XR", "--json"]


def _env(tmp_path):
    return {"NHS_LOOKUP_CACHE": str(tmp_path / "cache"), "COLUMNS": "200"}


def _lookup(tmp_path, *extra):
    res = runner.invoke(app, ["lookup", *UNSEEN, *extra], env=_env(tmp_path))
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_fit_model_round_trip_through_the_cli(tmp_path):
    gold = tmp_path / "site.json"
    gold.write_text(json.dumps(SHORTHAND))
    model = tmp_path / "model.json"
    res = runner.invoke(
        app,
        ["fit", SAMPLE, str(gold), "--output", str(model), "--cv", "3", "--folds", "3"],
        env=_env(tmp_path),
    )
    assert res.exit_code == 0, res.output
    assert "qx -> knee" in res.output and "pooled" in res.output
    data = json.loads(model.read_text())
    assert data["training"]["cases"] == 36 and data["cv_metrics"]["scheme"] == "3"
    assert _lookup(tmp_path)["clean_name"] != "XR Knee Rt"
    assert _lookup(tmp_path, "--model", str(model))["clean_name"] == "XR Knee Rt"
    again = runner.invoke(app, ["fit", SAMPLE, "--output", str(model)], env=_env(tmp_path))
    assert again.exit_code == 2 and "exists" in again.output  # never overwrites without --force
    ev = runner.invoke(app, ["evaluate", SAMPLE, "--model", str(model)], env=_env(tmp_path))
    assert ev.exit_code == 0, ev.output
    assert "top-1 accuracy" in ev.output


def test_model_for_another_catalogue_is_refused(tmp_path):
    model = tmp_path / "model.json"
    assert (
        runner.invoke(app, ["fit", SAMPLE, "-o", str(model), "--cv", "none"], env=_env(tmp_path)).exit_code
        == 0
    )
    tiny = tmp_path / "tiny.json"
    tiny.write_text(json.dumps([{"primary_source_name": "XR Knee Rt", "snomed_concept_id": 1}]))
    res = runner.invoke(
        app, ["lookup", *UNSEEN, "--model", str(model), "--catalogue", str(tiny)], env=_env(tmp_path)
    )
    assert res.exit_code == 2 and "another catalogue" in res.output
    ok = runner.invoke(
        app,
        ["lookup", *UNSEEN, "--model", str(model), "--catalogue", str(tiny), "--force-model"],
        env=_env(tmp_path),
    )
    assert ok.exit_code == 0, ok.output


def test_evaluate_cv_reports_folds_and_pooled(tmp_path):
    out = tmp_path / "cv.json"
    res = runner.invoke(app, ["evaluate", SAMPLE, "--cv", "hospital", "--json", str(out)], env=_env(tmp_path))
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert [f["name"] for f in data["folds"]] == ["Hospital A", "Hospital B", "Hospital C", "Hospital D"]
    assert data["pooled"]["cases"] == sum(f["test"] for f in data["folds"]) == 33
    for key in ("top1", "top5", "mrr", "ece", "auto_accept_coverage", "no_match_recall"):
        assert key in data["pooled"]
    bad = runner.invoke(app, ["evaluate", SAMPLE, "--cv", "1"], env=_env(tmp_path))
    assert bad.exit_code == 2


def test_refit_from_review_decisions_changes_a_later_answer(tmp_path):
    from nhs_lookup.service.db import Mapping, Store, utcnow
    from nhs_lookup.service.review import MappingKey

    url = f"sqlite:///{tmp_path / 'review.db'}"
    store = Store(url)
    with store.session() as s, s.begin():
        for i, row in enumerate(SHORTHAND):
            now = utcnow()
            s.add(
                Mapping(
                    key_hash=MappingKey.of(row["DATA_SOURCE"], row["EXAM_CODE"], row["EXAM_NAME"]).digest,
                    data_source=row["DATA_SOURCE"],
                    exam_code=row["EXAM_CODE"],
                    exam_name=row["EXAM_NAME"],
                    modality_code="XR",
                    status="approved" if i < 3 else "unreviewed",
                    status_by="human",
                    target_name=row["acceptable"][0],
                    created_at=now,
                    updated_at=now,
                )
            )
        now = utcnow()  # an automatic proposal is not a label
        s.add(Mapping(key_hash="auto", exam_name="qx auto", status="approved", status_by="auto",
                      target_name="CT Head", created_at=now, updated_at=now))  # fmt: skip
    store.close()
    before = tmp_path / "before.json"
    after = tmp_path / "after.json"
    assert (
        runner.invoke(app, ["fit", SAMPLE, "-o", str(before), "--cv", "none"], env=_env(tmp_path)).exit_code
        == 0
    )
    res = runner.invoke(
        app, ["fit", SAMPLE, "--review-db", url, "-o", str(after), "--cv", "none"], env=_env(tmp_path)
    )
    assert res.exit_code == 0, res.output
    assert json.loads(after.read_text())["training"]["review_decisions"] == 3
    assert _lookup(tmp_path, "--model", str(before))["clean_name"] != "XR Knee Rt"
    assert _lookup(tmp_path, "--model", str(after))["clean_name"] == "XR Knee Rt"


def test_train_with_model_runs_the_fitted_engine_in_its_workers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    gold = tmp_path / "site.json"
    gold.write_text(json.dumps(SHORTHAND))
    model = tmp_path / "model.json"
    fit = runner.invoke(app, ["fit", SAMPLE, str(gold), "-o", str(model), "--cv", "none"], env=_env(tmp_path))
    assert fit.exit_code == 0, fit.output
    unseen = tmp_path / "unseen.json"
    unseen.write_text(json.dumps([{"DATA_SOURCE": "Site", "MODALITY_CODE": "XR", "EXAM_CODE": "Q9",
                                   "EXAM_NAME": "qx right 2 views", "acceptable": ["XR Knee Rt"]}]))  # fmt: skip

    def train(name, *extra):
        args = ["train", "--dataset", str(unseen), "--experiment-name", name, "--db", "t.db",
                "--max-workers", "1", "--no-progress", "--report-json", f"{name}.json", *extra]  # fmt: skip
        res = runner.invoke(app, args, env=_env(tmp_path))
        assert res.exit_code == 0, res.output
        return json.loads((tmp_path / f"{name}.json").read_text())

    assert train("plain")["top1_accuracy"] == 0.0
    assert train("fitted", "--model", str(model))["top1_accuracy"] == 1.0
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    res = runner.invoke(
        app,
        ["train", "--dataset", str(unseen), "--experiment-name", "bad", "--db", "t.db", "--model", str(bad)],
        env=_env(tmp_path),
    )
    assert res.exit_code == 2 and "not an nhs-lookup model" in res.output
