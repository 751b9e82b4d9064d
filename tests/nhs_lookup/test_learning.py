"""Learning from labelled pairs: shorthand, calibration, threshold, honest cross-validation, model file."""

import json
import random

import pytest

from nhs_lookup.cases import load_cases
from nhs_lookup.learning.associations import learn_associations
from nhs_lookup.learning.calibration import CorrectnessModel, IsotonicCalibrator, calibration_from_dict
from nhs_lookup.learning.crossval import (
    accept_threshold,
    cross_validate,
    grouped_folds,
    hospital_folds,
    make_folds,
    name_key,
)
from nhs_lookup.learning.features import FEATURES, feature_rows, unresolved
from nhs_lookup.learning.fit import (
    FitOptions,
    OutOfFold,
    choose_threshold,
    fit_calibration,
    fit_model,
    fitted_engine,
    lexicon_of,
)
from nhs_lookup.learning.model import ModelError, engine_with, load_model
from nhs_lookup.metrics import auto_accept, expected_calibration_error, outcome_of
from nhs_lookup.records import Candidate, Case, CatalogueEntry, Components, ExamQuery
from nhs_lookup.vocab import DATA_DIR

# A site writes "qx" for knee: three reviewed names teach it; a fourth, unseen name uses it.
SHORTHAND = [
    Case(ExamQuery("XR qx Lt", "XR", None, "Site"), "s1", ("XR Knee Lt",)),
    Case(ExamQuery("qx (R)", "XR", None, "Site"), "s2", ("XR Knee Rt",)),
    Case(ExamQuery("XR qx both", "XR", None, "Site"), "s3", ("XR Knee Both",)),
]
UNSEEN = ExamQuery("qx right 2 views", "XR")


def _cases():
    cases, _ = load_cases(DATA_DIR / "sample_cases.json")
    return cases


def test_shorthand_is_learned_with_support_and_changes_an_unseen_answer(sample_engine):
    learned = learn_associations(SHORTHAND, lexicon_of(sample_engine))
    assert [(a.token, a.words, a.names) for a in learned] == [("qx", ("knee",), 3)]
    assert learn_associations(SHORTHAND[:1], lexicon_of(sample_engine)) == []  # one name is not enough
    before = sample_engine.lookup(UNSEEN)
    after = fitted_engine(sample_engine, _cases() + SHORTHAND).lookup(UNSEEN)
    assert before.best is None or "Knee" not in before.best.entry.name
    assert after.best is not None and after.best.entry.name == "XR Knee Rt"


def test_folds_grouped_by_name_never_leak_a_case_or_a_name():
    cases = _cases() + SHORTHAND + [Case(ExamQuery("XR QX  lt", "XR"), "dup", ("XR Knee Lt",))]
    folds = grouped_folds(cases, 4, seed=3)
    seen = sorted(i for f in folds for i in f.test)
    assert seen == list(range(len(cases)))  # every case judged exactly once
    assert name_key(cases[0]) and name_key(cases[-1]) == name_key(SHORTHAND[0])
    trained_on: list[list[Case]] = []

    def fitter(train):
        trained_on.append(train)
        return _Echo()

    cross_validate(cases, folds, fitter)
    for fold, train in zip(folds, trained_on, strict=True):
        test_ids = {id(cases[i]) for i in fold.test}
        assert not test_ids & {id(c) for c in train}
        assert not {name_key(cases[i]) for i in fold.test} & {name_key(c) for c in train}
    assert grouped_folds(cases, 4, seed=3) == folds  # seeded
    assert grouped_folds(cases, 4, seed=4) != folds


def test_hospital_folds_leave_one_source_out():
    cases = _cases()
    folds = hospital_folds(cases)
    assert [f.name for f in folds] == ["Hospital A", "Hospital B", "Hospital C", "Hospital D"]
    for f in folds:
        assert {cases[i].query.data_source for i in f.test} == {f.name}
        assert f.name not in {cases[i].query.data_source for i in f.train}
    with pytest.raises(ValueError, match="number of folds or 'hospital'"):
        make_folds(cases, "many")


class _Echo:
    """Stands in for an engine: answers nothing (the leak test only looks at the training sets)."""

    def lookup_many(self, queries):
        from nhs_lookup.records import Components, LookupResult

        return [LookupResult(q, Components(), None, 0.0, [], False, "low_confidence") for q in queries]


def test_isotonic_calibration_lowers_ece_on_held_out_scores():
    rng = random.Random(0)

    def sample(n):
        raw = [rng.random() for _ in range(n)]
        return raw, [rng.random() < r**3 for r in raw]  # raw scores are badly overconfident

    fit_raw, fit_ok = sample(2000)
    test_raw, test_ok = sample(2000)
    cal = IsotonicCalibrator.fit(fit_raw, fit_ok)
    before = expected_calibration_error(list(zip(test_raw, test_ok, strict=True)))
    after = expected_calibration_error(
        [(cal.probability(r), ok) for r, ok in zip(test_raw, test_ok, strict=True)]
    )
    assert before > 0.15 and after < 0.05
    probs = [cal.probability(x / 10) for x in range(11)]
    assert probs == sorted(probs) and 0.0 < probs[0] and probs[-1] < 1.0


def test_threshold_abstains_where_that_is_right_more_often():
    oof = OutOfFold(
        raw=[0.1, 0.2, 0.3, 0.8, 0.9],
        top_ok=[False, False, True, True, True],
        gold_no_match=[True, True, False, False, False],
    )
    assert choose_threshold(oof.raw, oof) == 0.3  # abstain on the two gold no-matches only
    assert choose_threshold([0.5] * 3, OutOfFold([0.5] * 3, [True] * 3, [False] * 3)) == 0.0


def test_model_file_round_trip_and_catalogue_check(sample_engine, tmp_path, nhs_free_catalogue):
    model = fit_model(sample_engine, _cases() + SHORTHAND, FitOptions(folds=3))
    path = model.save(tmp_path / "m.json")
    data = json.loads(path.read_text())
    for key in ("format_version", "catalogue", "vocabulary_version", "training", "config", "calibration",
                "learned_vocabulary", "no_match_threshold", "cv_metrics", "package_version"):  # fmt: skip
        assert key in data, key
    assert data["training"]["cases"] == len(_cases()) + 3 and len(data["training"]["hash"]) == 16
    again = load_model(path)
    assert again.extra_vocabulary == {"qx": "knee"} and again.no_match_threshold == model.no_match_threshold
    engine = engine_with(sample_engine, again)
    assert engine.lookup(UNSEEN).best.entry.name == "XR Knee Rt"
    other = nhs_free_catalogue
    with pytest.raises(ModelError, match="another catalogue"):
        engine_with(other, again)
    assert engine_with(other, again, force=True) is not None
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something else"}')
    with pytest.raises(ModelError, match="not an nhs-lookup model"):
        load_model(bad)


@pytest.fixture
def nhs_free_catalogue(sample_engine, tmp_path):
    """An engine on a different (tiny) catalogue, to check the model's catalogue fingerprint."""
    from nhs_lookup.config import LookupConfig
    from nhs_lookup.engine import LookupEngine

    rows = [
        {"primary_source_name": "XR Knee Lt", "snomed_concept_id": 1},
        {"primary_source_name": "CT Head", "snomed_concept_id": 2},
    ]
    cat = tmp_path / "tiny.json"
    cat.write_text(json.dumps(rows))
    return LookupEngine.load(LookupConfig(cache_dir=sample_engine.config.cache_dir), cat)


def test_real_data_cv_is_honest_and_calibration_helps(nhs_engine, shared_dir):
    """Fit on train_gold, judge dev+sanity (never seen): calibrated ECE is lower than the built-in one."""
    from nhs_lookup.evaluate import evaluate

    nhs = shared_dir / "nhs"
    train, _ = load_cases(nhs / "train_gold.json")
    test, _ = load_cases([nhs / "dev_gold.json", nhs / "sanity_gold.json"])
    fitted = fitted_engine(nhs_engine, train)
    assert isinstance(fitted.calibrator, CorrectnessModel)  # enough answers for the correctness model
    assert fitted.calibrator.auto_accept_threshold is not None
    plain = evaluate(nhs_engine, test)
    learned = evaluate(fitted, test)
    assert learned.ece < plain.ece
    assert learned.top1_accuracy >= plain.top1_accuracy - 0.02


def _synthetic_oof(n=400, seed=0):
    """Out-of-fold answers where a review flag halves the odds of being right at the same raw score."""
    rng = random.Random(seed)
    oof = OutOfFold()
    flag, raw_i = FEATURES.index("review_flag"), FEATURES.index("raw_logit")
    for i in range(n):
        raw = rng.random()
        flagged = rng.random() < 0.3
        x = [0.0] * len(FEATURES)
        x[raw_i], x[flag] = 6 * raw - 2, float(flagged)
        ok = rng.random() < (0.6 * raw**2 if flagged else 0.15 + 0.85 * raw)
        oof.raw.append(raw)
        oof.top_ok.append(ok)
        oof.gold_no_match.append(False)
        oof.features.append(x)
        oof.fold.append(i % 5)
    return oof


def test_correctness_model_uses_the_review_flag_and_round_trips_as_json():
    import numpy as np

    oof = _synthetic_oof()
    model, probs, how = fit_calibration(oof, FitOptions())
    assert isinstance(model, CorrectnessModel) and "review_flag" in how
    assert model.features == ("raw_logit", "review_flag", "unresolved")
    x = np.zeros((2, len(FEATURES)))
    x[:, FEATURES.index("raw_logit")] = 3.5
    x[1, FEATURES.index("review_flag")] = 1.0
    clear, flagged = model.probabilities(x)
    assert flagged < clear - 0.1
    # The threshold is the lowest calibrated probability whose out-of-fold answers reach 99% precision.
    pairs = list(zip(probs, oof.top_ok, strict=True))
    assert model.auto_accept_threshold == pytest.approx(auto_accept(pairs, 0.99)[1], abs=1e-6)
    again = calibration_from_dict(json.loads(json.dumps(model.to_dict())))
    assert again == model and again.probabilities(x) == model.probabilities(x)
    with pytest.raises(ValueError, match="unknown correctness-model features"):
        calibration_from_dict({**model.to_dict(), "features": ["raw_logit", "tea_leaves"]})
    iso, _, how = fit_calibration(oof, FitOptions(correctness="isotonic"))
    assert isinstance(iso, IsotonicCalibrator) and iso.auto_accept_threshold is not None


def test_engine_confidence_is_the_correctness_model_of_the_answer_features(sample_engine):
    """The engine's per-answer hook and the offline feature rows (used to fit) agree exactly."""
    oof = _synthetic_oof()
    model, _, _ = fit_calibration(oof, FitOptions())
    learned = {"qx": "knee"}
    plain = sample_engine.__class__(
        sample_engine.config, sample_engine.catalogue, sample_engine.index, extra_vocabulary=learned
    )
    fitted = sample_engine.__class__(
        sample_engine.config,
        sample_engine.catalogue,
        sample_engine.index,
        extra_vocabulary=learned,
        calibrator=model.with_learned(learned),
    )
    queries = [c.query for c in _cases()] + [UNSEEN]
    rows = feature_rows(plain, queries, learned)
    results = fitted.lookup_many(queries)
    import numpy as np

    checked = 0
    for (_, feats), r in zip(rows, results, strict=True):
        if feats is None or r.no_match_reason in ("non_clinical",) or r.review_reason:
            continue
        assert r.confidence == pytest.approx(model.probabilities(np.array([feats]))[0], abs=1e-9)
        checked += 1
    assert checked > 20
    assert rows[-1][1][FEATURES.index("learned_term")] == 1.0  # "qx" is learned shorthand


def test_cross_validation_auto_accept_uses_the_training_folds_threshold(sample_engine):
    cases = [c for c in _cases() if c.labelled]
    folds = grouped_folds(cases, 3, seed=1)
    cv = cross_validate(cases, folds, lambda train: sample_engine)
    accepted = right = 0
    for f in cv.folds:
        train = [cases[i] for i in f.fold.train]
        outs = [
            outcome_of(c, r, 0)
            for c, r in zip(train, sample_engine.lookup_many([c.query for c in train]), strict=True)
        ]
        t = auto_accept([(o.confidence, o.top1) for o in outs if o.matched], 0.99, total=len(outs))[1]
        assert f.accept_threshold == t == accept_threshold(sample_engine, train)
        for o in f.outcomes:
            if t is not None and o.matched and o.confidence >= t:
                accepted += 1
                right += o.top1
    assert cv.pooled.auto_accept_coverage == pytest.approx(accepted / len(cases))
    assert cv.pooled.auto_accept_precision == (pytest.approx(right / accepted) if accepted else None)
    oracle = auto_accept(
        [(o.confidence, o.top1) for f in cv.folds for o in f.outcomes if o.matched], 0.99, total=len(cases)
    )[0]
    assert cv.pooled.auto_accept_oracle_coverage == pytest.approx(oracle)

    class _WithOwn:
        calibrator = IsotonicCalibrator((0.0, 1.0), (0.0, 1.0), auto_accept_threshold=0.77)

    assert accept_threshold(_WithOwn(), cases) == 0.77  # a fitted model brings its out-of-fold threshold


def test_format_1_model_with_isotonic_calibration_still_loads(sample_engine, tmp_path):
    model = fit_model(sample_engine, _cases() + SHORTHAND, FitOptions(folds=3, correctness="isotonic"))
    data = model.to_dict()
    data["format_version"] = 1
    data["calibration"] = {"method": "isotonic", "x": [0.2, 0.9], "y": [0.1, 0.95]}  # no threshold key
    del data["auto_accept_threshold"]
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(data))
    old = load_model(path)
    assert isinstance(old.calibration, IsotonicCalibrator) and old.auto_accept_threshold is None
    assert engine_with(sample_engine, old).lookup(UNSEEN).best.entry.name == "XR Knee Rt"
    data["format_version"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="newer than this package reads"):
        load_model(path)


def _cand(row: int, name: str, score: float, **comps) -> Candidate:
    return Candidate(CatalogueEntry(row, name, components=Components(**comps)), score)


def _prepared(source: str | None, technique: tuple[str, ...] = (), text: str = ""):
    """The two fields of a prepared query that :func:`unresolved` reads."""
    from types import SimpleNamespace

    return SimpleNamespace(
        q_modality_source=source, components=Components(technique=technique, clean_text=text)
    )


def test_unresolved_guidance_modality_of_an_ir_booking():
    """ "Liver Biopsy" booked as IR: fluoroscopic (transjugular) and ultrasound-guided liver biopsy differ
    only in the modality, which the name leaves to the RIS code; a stated modality settles it."""
    fl = _cand(
        0, "Fluoroscopic guided biopsy liver", 1.10, modality="FL", anatomy=("liver",), technique=("guided",)
    )
    us = _cand(1, "US Guided biopsy liver", 1.02, modality="US", anatomy=("liver",), technique=("guided",))
    far = _cand(1, "US Guided biopsy liver", 0.80, modality="US", anatomy=("liver",), technique=("guided",))
    kidney = _cand(
        1, "US Guided biopsy kidney", 1.08, modality="US", anatomy=("kidney",), technique=("guided",)
    )
    assert unresolved(_prepared("code"), [fl, us])
    assert not unresolved(_prepared("text"), [fl, us])  # "Fluoro liver biopsy": the name states it
    assert not unresolved(_prepared("code"), [fl, far])  # the competitor is not close
    assert not unresolved(_prepared("code"), [fl, kidney])  # it differs in anatomy, which the name states


def test_unresolved_when_the_row_defines_a_technique_the_name_does_not_state():
    mra = _cand(
        0, "MRA Spine with contrast", 0.73, modality="MRI", anatomy=("spine",), technique=("angiography",)
    )
    mri = _cand(1, "MRI Spine with contrast", 0.40, modality="MRI", anatomy=("spine",))
    assert unresolved(_prepared("text"), [mra, mri])  # "MRI Spine C+": angiography not stated
    assert not unresolved(_prepared("text", ("angiography",)), [mra, mri])  # "MRA Spine C+"
    assert not unresolved(_prepared("text"), [mri, mra])


def test_unresolved_when_the_name_states_a_defining_technique_the_row_lacks():
    """ "CT Head and Venogram" answered with the plain "CT Head" row: the venogram is not carried."""
    plain = _cand(0, "CT Head", 0.66, modality="CT", anatomy=("head",))
    veno = _cand(1, "CT Venogram head", 0.50, modality="CT", anatomy=("head",), technique=("venography",))
    assert unresolved(_prepared("text", ("venography",)), [plain, veno])
    assert not unresolved(_prepared("text", ("venography",)), [veno, plain])
    assert not unresolved(_prepared("text", ("view",)), [plain, veno])  # a view is not a study


def test_unresolved_when_the_row_states_a_clinical_context_the_name_does_not():
    """A transplanted-organ (or obstetric, paediatric...) row is a different study from the plain one:
    "MRA Liver" mapped to the transplanted-liver MRA is a guess; "MRA Liver transplant" is not."""
    tx = Candidate(
        CatalogueEntry(
            0,
            "MRA Hepatic transplant",
            fsn="Magnetic resonance angiography of transplanted liver (procedure)",
            components=Components(
                modality="MRI",
                anatomy=("liver",),
                technique=("angiography",),
                clean_text="mri angiography liver transplant",  # the row as the catalogue parses it
            ),
        ),
        0.84,
    )
    plain = _cand(1, "MRA Visceral", 0.5, modality="MRI", technique=("angiography",))
    angio = ("angiography",)
    assert unresolved(_prepared("text", angio, "mri liver angiography"), [tx, plain])
    assert not unresolved(_prepared("text", angio, "mri liver angiography transplant"), [tx, plain])
    assert not unresolved(_prepared("text", angio, "mri angiography"), [plain, tx])


def test_unresolved_review_bit_lowers_confidence_in_the_fitted_model():
    """The default correctness model takes the bit as an input; on out-of-fold answers where unresolved
    answers are right less often at the same raw score, its coefficient is negative."""
    import numpy as np

    rng = random.Random(1)
    oof = OutOfFold()
    raw_i, bit = FEATURES.index("raw_logit"), FEATURES.index("unresolved")
    for i in range(400):
        raw, flagged = rng.random(), rng.random() < 0.2
        x = [0.0] * len(FEATURES)
        x[raw_i], x[bit] = 6 * raw - 2, float(flagged)
        oof.raw.append(raw)
        oof.top_ok.append(rng.random() < (0.5 * raw if flagged else 0.2 + 0.8 * raw))
        oof.gold_no_match.append(False)
        oof.features.append(x)
        oof.fold.append(i % 5)
    model, _, _ = fit_calibration(oof, FitOptions())
    assert "unresolved" in model.features
    assert model.score.coef[model.features.index("unresolved")] < 0
    x = np.zeros((2, len(FEATURES)))
    x[:, raw_i] = 3.5
    x[1, bit] = 1.0
    clear, flagged = model.probabilities(x)
    assert flagged < clear - 0.1
    old, _, _ = fit_calibration(oof, FitOptions(correctness="flagged"))
    assert old.features == ("raw_logit", "review_flag")


def test_unresolved_on_the_nhs_catalogue(nhs_engine):
    """On the real catalogue an IR "Liver Biopsy" is unresolved (guidance not stated); a US-guided one
    is not."""
    col = FEATURES.index("unresolved")
    (_, vague), (_, stated) = feature_rows(
        nhs_engine, [ExamQuery("Liver Biopsy", "IR"), ExamQuery("US Guided biopsy liver", "US")]
    )
    assert vague[col] == 1.0 and stated[col] == 0.0
