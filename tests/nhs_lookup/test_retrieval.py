from nhs_lookup.records import ExamQuery


def test_retrieval_returns_component_compatible_candidates(sample_engine):
    p = sample_engine.prepare(ExamQuery("Rt Shoulder MRI", "MR"))
    names = [sample_engine.catalogue.entries[i].name for i in p.idx[:10]]
    assert "MRI Shoulder Rt" in names
    assert len(set(p.idx.tolist())) == len(p.idx)  # no duplicates
    assert p.lexical.shape == p.semantic.shape == p.anatomy.shape == p.idx.shape


def test_synonyms_reach_the_right_rows(sample_engine):
    for name, code, expected in [
        ("Calcaneum Left", "XR", "XR Calcaneus Lt"),
        ("CT Tib/Fib Right", "CT", None),  # no CT lower-leg row in the sample: any lower-leg row is fine
        ("USS KUB", "US", "US Urinary tract"),
        ("Thumb (R)", "XR", "XR Thumb Rt"),
    ]:
        p = sample_engine.prepare(ExamQuery(name, code))
        top = [sample_engine.catalogue.entries[i].name for i in p.idx[:20]]
        if expected:
            assert expected in top, (name, top)
        else:
            assert any("Lower leg" in t for t in top), (name, top)


def test_batch_prepare_deduplicates_identical_names(sample_engine):
    qs = [ExamQuery("Chest PA", "XR")] * 5 + [ExamQuery("CT Head", "CT")]
    prepared = sample_engine.prepare_many(qs)
    assert len(prepared) == 6
    assert prepared[0] is prepared[4]
    assert prepared[5].components.modality == "CT"
