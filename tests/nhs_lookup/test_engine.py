import pickle

import pytest

from nhs_lookup.cases import correct_rank, load_cases
from nhs_lookup.config import ScoringConfig
from nhs_lookup.records import ExamQuery
from nhs_lookup.vocab import DATA_DIR


def test_lookup_basic_fields(sample_engine):
    r = sample_engine.lookup("CT Abdo/Pelvis C+", modality_code="CT")
    assert r.matched and r.best.entry.name == "CT Abdomen and pelvis with contrast"
    assert 0.0 <= r.confidence <= 1.0 and r.confidence > 0.7
    assert r.components.contrast == "with" and r.candidates[0].entry.name == r.best.entry.name
    assert len(r.candidates) == sample_engine.config.top_k_results
    assert "CT" in r.explanation
    d = r.to_dict()
    assert d["snomed"]["found"] and d["clean_name"] == r.best.entry.name


@pytest.mark.parametrize(
    ("name", "code", "expected"),
    [
        ("Knee Right", "XR", "XR Knee Rt"),  # stated laterality respected
        ("Knee", "XR", "XR Knee Both"),  # unstated: the Both row (no unlateralised row exists)
        ("Knees", "XR", "XR Knee Both"),
        ("CT Head C-", "CT", "CT Head"),  # stated "without": the row without a contrast qualifier
        ("CT Head", "CT", "CT Head"),  # unstated contrast prefers no qualifier
        ("MRI Lumbar Spine Gadolinium", "MR", "MRI Spine lumbar with contrast"),
        ("US Breast Left", "Mamm", "US Breast Lt"),  # diagnostic never maps to the biopsy rows
        ("US Breast Core Biopsy Left", "Mamm", "US Guided biopsy breast Lt"),
        ("Mammogram Screening Bilateral", "Mamm", "XR Screening mammogram Both"),
    ],
)
def test_clinical_constraints(sample_engine, name, code, expected):
    assert sample_engine.lookup(name, modality_code=code).best.entry.name == expected


def test_non_clinical_and_unspecific_are_explicit_no_matches(sample_engine):
    r = sample_engine.lookup("Patient did not attend", modality_code="XR")
    assert not r.matched and r.no_match_reason == "non_clinical" and r.best is None
    r = sample_engine.lookup("XR Miscellaneous", modality_code="XR")
    assert not r.matched and r.no_match_reason == "not_in_catalogue"


def test_low_confidence_no_match(sample_engine):
    from dataclasses import replace

    engine_cfg = replace(sample_engine.config, min_confidence=1.01)
    prepared = sample_engine.prepare(ExamQuery("Knee Right", "XR"))
    old = sample_engine.config
    sample_engine.config = engine_cfg
    try:
        r = sample_engine.rank(prepared)
    finally:
        sample_engine.config = old
    assert not r.matched and r.no_match_reason == "low_confidence" and r.candidates


def test_exclude_never_proposes(sample_engine):
    r = sample_engine.lookup("Knee Right", modality_code="XR", exclude=["XR Knee Rt"])
    assert all(c.entry.name != "XR Knee Rt" for c in r.candidates)


def test_lookup_equals_rank_of_prepare_and_prepared_is_picklable(sample_engine):
    q = ExamQuery("US Abdo", "US")
    prepared = sample_engine.prepare(q)
    assert len(prepared.idx) >= 100 or len(prepared.idx) == len(sample_engine.catalogue)
    clone = pickle.loads(pickle.dumps(prepared))
    a = sample_engine.lookup(q)
    b = sample_engine.rank(clone, sample_engine.config.scoring)
    assert [c.entry.name for c in a.candidates] == [c.entry.name for c in b.candidates]
    assert a.confidence == pytest.approx(b.confidence)


def test_rank_responds_to_scoring_config(sample_engine):
    prepared = sample_engine.prepare(ExamQuery("CT Abdomen", "CT"))
    base = sample_engine.rank(prepared, ScoringConfig())
    tweaked = ScoringConfig(retriever_top_k=3)
    assert len(sample_engine.rank(prepared, tweaked).candidates) <= 3
    assert base.best.entry.name == "CT Abdomen"


def test_lookup_many_matches_single_lookups(sample_engine):
    cases, _ = load_cases(DATA_DIR / "sample_cases.json")
    batch = sample_engine.lookup_many([c.query for c in cases])
    for case, res in zip(cases[:8], batch[:8], strict=True):
        single = sample_engine.lookup(case.query)
        assert (single.best and single.best.entry.name) == (res.best and res.best.entry.name)


def test_sample_cases_mostly_correct(sample_engine):
    cases, errors = load_cases(DATA_DIR / "sample_cases.json")
    assert not errors and len(cases) >= 30
    results = sample_engine.lookup_many([c.query for c in cases])
    top1 = sum(correct_rank(r, c) == 1 for r, c in zip(results, cases, strict=True)) / len(cases)
    assert top1 >= 0.85


def test_search_catalogue(sample_engine):
    hits = sample_engine.search_catalogue("knee", limit=5)
    assert 0 < len(hits) <= 5 and all("Knee" in h.name for h in hits[:3])
    assert sample_engine.search_catalogue("CT Head")[0].name == "CT Head"
    assert sample_engine.search_catalogue("") == []


@pytest.mark.parametrize("name", ["dev_gold.json", "sanity_gold.json"])
def test_gold_thresholds_on_shared_data(nhs_engine, shared_dir, name):
    from nhs_lookup.evaluate import evaluate

    cases, _ = load_cases(shared_dir / "nhs" / name)
    rep = evaluate(nhs_engine, cases)
    assert rep.top1_accuracy >= 0.90, (name, rep.top1_accuracy)
    assert rep.top5_accuracy >= 0.97, (name, rep.top5_accuracy)


# --- second accuracy pass: rules checked end to end on the real catalogue -----------------------


@pytest.mark.parametrize(
    ("name", "code", "expected"),
    [
        ("CT Lymphoma Staging", "CT", "CT Chest abdomen and pelvis"),
        ("US Pelvis & TV", "US", "US Pelvis TA and transvaginal"),
        ("NM Sentinel Node Lower Limb", "NM", "NM Sentinel node Loc and imaging"),
        ("Sentinel Node Injection Left", "Mamm", "NM Sentinel node breast Loc imaging Lt"),
        ("II Ureteroscopy Left", "Other", "Ureteroscopy Left"),
        ("II Left Hand", "Other", "Mobile image intensifier upper limb Lt"),
        ("II Right Femur", "Other", "Mobile image intensifier lower limb Rt"),
        ("CT TAVI Work-up C+", "CT", "CT Angiography for TAVI workup"),
        ("US Fem-Pop Bypass Graft Duplex", "US", "US Graft surveillance"),
        ("US DD Bypass Graft Left Leg", "US", "US Graft artery lower limb Left"),
        ("Mamm US Breast Left", "US", "US Breast Lt"),
        ("Bone Age", "XR", "XR Hand and wrist for bone age"),
        ("US Arm Veins Left", "US", "US Doppler upper limb veins Lt"),
    ],
)
def test_second_pass_rules_on_nhs_catalogue(nhs_engine, name, code, expected):
    r = nhs_engine.lookup(name, modality_code=code)
    assert r.best is not None and r.best.entry.name == expected, [c.entry.name for c in r.candidates[:5]]


def test_ancestor_region_beats_sibling_part(nhs_engine):
    # No "CT Femur" row: the containing region (thigh / lower limb) is right, a sibling (foot) is not.
    r = nhs_engine.lookup("CT Femur Left", modality_code="CT")
    assert r.best is not None
    assert set(r.best.entry.components.anatomy) & {"thigh", "lower limb", "femur"}


def test_stated_modality_keeps_compatible_candidates(nhs_engine):
    p = nhs_engine.prepare(ExamQuery("Radius/Ulna - Right (II)", "Other"))
    first = [nhs_engine.catalogue.entries[i].components.modality for i in p.idx[:25]]
    assert all(m in ("FL", "IR", None) for m in first), first


def test_extra_vocabulary_and_calibrator_hooks(sample_engine):
    """Learned shorthand (phrase -> catalogue term) reaches parsing; a calibrator replaces confidence."""
    from nhs_lookup.engine import LookupEngine

    base = sample_engine.lookup("XR zzqknee Lt", modality_code="XR")
    assert "knee" not in base.components.anatomy
    eng = LookupEngine(
        sample_engine.config,
        sample_engine.catalogue,
        sample_engine.index,
        extra_vocabulary={"zzqknee": "knee"},
        calibrator=lambda top, margin, hard: 0.42,
    )
    res = eng.lookup("XR zzqknee Lt", modality_code="XR")
    assert "knee" in res.components.anatomy
    assert res.best is not None and "Knee" in res.best.entry.name
    assert res.confidence == 0.42
    assert res.candidates[0].score > 0  # the raw score stays available for calibration on top
    assert sample_engine.vocabulary.extended({}) is sample_engine.vocabulary
