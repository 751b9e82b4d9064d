import numpy as np

from nhs_lookup.config import ScoringConfig
from nhs_lookup.records import ExamQuery
from nhs_lookup.scoring import calibrate, modality_matrix, score


def test_modality_matrix_merges_config_names():
    cfg = ScoringConfig(modality_similarity={"Mamm": {"X-ray": 0.9}})
    m = modality_matrix(cfg)
    from nhs_lookup.scoring import MODALITIES

    assert m[MODALITIES["MG"], MODALITIES["XR"]] == np.float32(0.9)
    assert m[MODALITIES["CT"], MODALITIES["CT"]] == 1.0
    assert m[MODALITIES["CT"], MODALITIES["US"]] == 0.0


def test_hard_constraints_outrank_soft_scores(sample_engine):
    p = sample_engine.prepare(ExamQuery("US Breast Right", "US"))
    out = score(p, ScoringConfig(retriever_top_k=100))
    names = [sample_engine.catalogue.entries[p.idx[i]].name for i in out.order]
    best_hard = min(i for i, h in enumerate(out.hard) if h > 0)
    # every candidate that respects the constraints ranks above every violating one
    assert all(h == 0 for h in out.hard[:best_hard])
    assert all(
        out.scores[i] < out.scores[best_hard - 1] for i in range(best_hard, len(names)) if out.hard[i] > 0
    )
    assert names[0] == "US Breast Rt"


def test_weights_change_the_ranking(sample_engine):
    p = sample_engine.prepare(ExamQuery("CT Abdomen", "CT"))
    a = score(p, ScoringConfig())
    cfg = ScoringConfig()
    cfg.weights_component.anatomy = 0.0
    cfg.weights_final.semantic = 0.0
    b = score(p, cfg)
    assert not np.allclose(a.scores[:5], b.scores[:5])


def test_calibration_is_monotone_and_bounded():
    xs = [calibrate(s, 0.1, 0) for s in (0.2, 0.5, 0.8, 1.2)]
    assert xs == sorted(xs) and all(0 <= x <= 1 for x in xs)
    assert calibrate(0.8, 0.2, 0) > calibrate(0.8, 0.0, 0)
    assert calibrate(0.9, 0.3, 1.0) < 0.1
