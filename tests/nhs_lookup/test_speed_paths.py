"""The fast paths give the same answers as the reference ones: batch vs single lookups, and the
scikit-learn-free TF-IDF transform vs scikit-learn's own."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nhs_lookup.cases import load_cases
from nhs_lookup.records import ExamQuery
from nhs_lookup.vocab import DATA_DIR

SUFFIXES = ("", " Lt", " right", " C+", " w/o contrast", " bilat", " ++", " (portable)")


def _counts(ids: list[list[int]], m) -> np.ndarray:
    """Dense (B, N) overlap counts, as prepare_batch computes them."""
    from nhs_lookup.retrieval import _overlap

    return _overlap(ids, m).counts


def _varied_queries() -> list[ExamQuery]:
    """A few hundred varied names from the bundled sample data (cases and catalogue rows)."""
    cases, _ = load_cases(DATA_DIR / "sample_cases.json")
    rows = json.loads((DATA_DIR / "sample_catalogue.json").read_text())
    names = [r["primary_source_name"] for r in rows if isinstance(r, dict) and "primary_source_name" in r]
    out = [
        ExamQuery(c.query.exam_name + s, c.query.modality_code if i % 2 else None)
        for c in cases
        for i, s in enumerate(SUFFIXES)
    ]
    out += [ExamQuery(n.lower() if i % 3 == 0 else n, None) for i, n in enumerate(names)]
    out += [ExamQuery("", "CT"), ExamQuery("DNA", "XR"), ExamQuery("CT", None), ExamQuery("+++", "US")]
    return out


def _answer(r) -> tuple:
    return (
        r.best and r.best.entry.name,
        round(r.confidence, 9),
        r.no_match_reason,
        r.review_reason,
        r.ambiguous,
        r.explanation,
        [(c.entry.name, round(c.score, 6), round(c.semantic_score, 6), c.notes) for c in r.candidates],
    )


def test_batch_and_single_lookups_agree_on_varied_names(sample_engine):
    queries = _varied_queries()
    assert len(queries) >= 250
    batch = sample_engine.lookup_many(queries)
    assert len({r.best.entry.name for r in batch if r.best}) > 10  # varied answers, not one
    for q, res in zip(queries, batch, strict=True):
        assert _answer(sample_engine.lookup(q)) == _answer(res), q


@pytest.mark.parametrize(
    ("options", "texts"),
    [
        ({"analyzer": "char_wb", "ngram_range": (2, 4), "dtype": np.float32}, ["ct head", "xr  knee lt"]),
        ({"analyzer": "word", "ngram_range": (1, 2), "token_pattern": r"[a-z0-9]+"}, ["ct head", "mri"]),
    ],
)
def test_tfidf_model_transforms_bit_for_bit_like_sklearn(options, texts):
    from sklearn.feature_extraction.text import TfidfVectorizer

    from nhs_lookup.tfidf import TfidfModel

    corpus = ["ct head", "ct abdomen and pelvis with contrast", "xr knee left", "mri lumbar spine", "us neck"]
    vec = TfidfVectorizer(sublinear_tf=True, **options).fit(corpus)
    queries = [*texts, "", "Ünknown WORDS 12mm", "ct ct ct head", "knee\tleft   xr"]
    want = vec.transform(queries).tocsr()
    got = TfidfModel.from_sklearn(vec).transform(queries)
    assert got.dtype == want.dtype
    assert np.array_equal(got.indptr, want.indptr)
    assert np.array_equal(got.indices, want.indices)
    assert np.array_equal(got.data, want.data)  # exact, not approximately equal


def test_tfidf_model_refuses_settings_it_does_not_reproduce():
    from sklearn.feature_extraction.text import TfidfVectorizer

    from nhs_lookup.tfidf import TfidfModel

    vec = TfidfVectorizer(analyzer="char", sublinear_tf=True).fit(["ct head"])
    with pytest.raises(ValueError):
        TfidfModel.from_sklearn(vec)


def test_binary_counts_equal_the_sparse_product():
    import scipy.sparse as sp

    from nhs_lookup.retrieval import _binary

    rng = np.random.default_rng(0)
    m = (sp.random(40, 200, density=0.1, random_state=1, format="csr") > 0).astype(np.float32)
    ids = [sorted(set(rng.integers(0, 40, size=k).tolist())) for k in (0, 1, 3, 9, 0, 20)]
    q = _binary([{str(i) for i in c} for c in ids], {str(i): i for i in range(40)})
    want = (q @ m).toarray()
    got = _counts(ids, m)
    assert want.sum() > 0 and got.dtype == want.dtype
    assert np.array_equal(got, want)
    assert _counts([[], []], m).shape == (2, 200) and not _counts([[], []], m).any()


def test_catalogue_cache_loads_parsed_rows_lazily(tmp_path):
    import pickle

    from nhs_lookup.catalogue import SAMPLE_CATALOGUE, load_catalogue

    built = load_catalogue(SAMPLE_CATALOGUE, tmp_path)  # parses, writes the cache and its side file
    cached = load_catalogue(SAMPLE_CATALOGUE, tmp_path)
    assert "parsed" not in cached.__dict__  # not unpickled until used
    assert cached.lexicon() == built.lexicon()
    assert cached.parsed == built.parsed and cached.parsed_fsn == built.parsed_fsn
    # Without the side file (e.g. a pickled copy sent elsewhere) the rows are parsed again, identically.
    for side in tmp_path.glob("parsed-*.pkl"):
        side.unlink()
    again = load_catalogue(SAMPLE_CATALOGUE, tmp_path)
    assert again.parsed == built.parsed and again.parsed_fsn == built.parsed_fsn
    copy = pickle.loads(pickle.dumps(built))
    assert copy.parsed == built.parsed and copy.entries == built.entries


def _tuned_scoring():
    from nhs_lookup.config import ScoringConfig

    cfg = ScoringConfig(retriever_top_k=40, modality_similarity={"CT": {"MRI": 0.7}})
    cfg.interventional_bonus, cfg.interventional_penalty = 0.13, -0.21
    cfg.context_match_bonus, cfg.action_unstated_penalty = 0.07, 0.05
    cfg.weights_component.anatomy = 0.45
    return cfg


@pytest.mark.parametrize("tuned", [False, True])
def test_batch_scoring_equals_per_query_scoring_bit_for_bit(sample_engine, tuned):
    from nhs_lookup.scoring import score, score_many

    cfg = _tuned_scoring() if tuned else sample_engine.config.scoring
    extra = [
        "Sentinel node injection breast",
        "US guided biopsy liver",
        "Removal of PICC line",
        "Lymphoscintigram",
    ]
    prepared = sample_engine.prepare_many(_varied_queries() + [ExamQuery(n, None) for n in extra])
    batch = score_many(prepared, cfg)
    assert len(batch) == len(prepared)
    assert any(o.hard.any() for o in batch) and any(p.q_interventional for p in prepared)
    for p, got in zip(prepared, batch, strict=True):
        want = score(p, cfg)
        for name in ("order", "scores", "semantic", "hard"):
            a, b = getattr(want, name), getattr(got, name)
            assert a.dtype == b.dtype and np.array_equal(a, b), name
        assert want.component.keys() == got.component.keys()
        for k, v in want.component.items():
            assert v.dtype == got.component[k].dtype and np.array_equal(v, got.component[k]), k


def test_batch_scoring_falls_back_per_query_on_mixed_dtypes(sample_engine):
    from dataclasses import replace

    from nhs_lookup.scoring import score, score_many

    prepared = sample_engine.prepare_many(_varied_queries()[:6])
    prepared[2] = replace(prepared[2], lexical=prepared[2].lexical.astype(np.float64))
    cfg = sample_engine.config.scoring
    for p, got in zip(prepared, score_many(prepared, cfg), strict=True):
        assert np.array_equal(score(p, cfg).scores, got.scores)


@pytest.mark.parametrize("rows", [3, 60])  # 3: the numpy path of a few queries; 60: scipy's kernel
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_product_equals_scipy_product_bit_for_bit(dtype, rows, monkeypatch):
    import scipy.sparse as sp

    from nhs_lookup import csr
    from nhs_lookup.csr import Csr, _numpy_product, dense_product

    # as in a process without scipy: a few rows take the numpy path (scipy is loaded in this one)
    monkeypatch.setattr(csr, "_numpy_first", lambda: rows <= csr.SMALL_BATCH)
    a = sp.random(rows, 300, density=0.2, random_state=1, format="lil", dtype=dtype)
    a[1, :] = 0  # an empty query row
    a = a.tocsr()
    b = sp.random(300, 200, density=0.1, random_state=2, format="csr", dtype=dtype)
    want = (a @ b).toarray()
    assert np.array_equal(_numpy_product(Csr.of(a), Csr.of(b), np.dtype(dtype)), want)
    for x, y in ((a, b), (Csr.of(a), Csr.of(b))):
        got = dense_product(x, y)
        assert got.dtype == want.dtype and got.shape == want.shape and want.any()
        assert np.array_equal(got, want)  # exact: the same products, the same summation order
        as32 = dense_product(x, y, np.float32)
        assert as32.dtype == np.float32 and np.array_equal(as32, np.asarray(want, dtype=np.float32))
    empty = sp.csr_matrix((0, 300), dtype=dtype)
    assert dense_product(empty, b).shape == (0, 200)
    assert not dense_product(sp.csr_matrix((2, 300), dtype=dtype), b).any()


def test_numpy_product_sums_in_the_kernel_order():
    """Values whose float32 sum depends on the order: the numpy path must add as the kernel does."""
    import scipy.sparse as sp

    from nhs_lookup.csr import Csr, _numpy_product

    rng = np.random.default_rng(5)
    a = sp.csr_matrix(rng.choice([0.0, 1e-8, 1.0, 3e7], size=(4, 50)).astype(np.float32))
    b = sp.csr_matrix(rng.choice([0.0, 1e-8, 0.1, 1e8], size=(50, 30)).astype(np.float32))
    want = (a @ b).toarray()
    got = _numpy_product(Csr.of(a), Csr.of(b), np.dtype(np.float32))
    assert np.array_equal(got, want)
    assert not np.array_equal(want, (a.toarray().astype(np.float64) @ b.toarray()).astype(np.float32))


def _order_sensitive(rows: int, seed: int = 5):
    """Query rows and a right-hand matrix with a few full rows, whose float32 sums depend on the order."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    a = sp.csr_matrix(rng.choice([0.0, 0.0, 1e-8, 1.0, 3e7], size=(rows, 50)).astype(np.float32))
    b = rng.choice([0.0, 0.0, 0.0, 0.0, 1e-8, 0.1, 1e8], size=(50, 30)).astype(np.float32)
    b[[3, 17, 40]] = rng.choice([1e-8, 0.1, 1e8], size=(3, 30))  # three rows in every column
    return a, sp.csr_matrix(b)


@pytest.mark.parametrize("rows", [3, 60])  # 3: the numpy path of a few queries; 60: scipy's kernel
def test_dense_rows_product_sums_sparse_rows_then_dense_rows(rows, monkeypatch):
    """With DenseRows, the product is, bit for bit, scipy's kernel on the query entries reordered by
    dense_last (the kernel adds in storage order): the order is the same whichever path computes it."""
    from nhs_lookup import csr
    from nhs_lookup.csr import Csr, DenseRows, dense_last, dense_product

    # as in a process without scipy: a few rows take the numpy path (scipy is loaded in this one)
    monkeypatch.setattr(csr, "_numpy_first", lambda: rows <= csr.SMALL_BATCH)
    a, b = _order_sensitive(rows)
    dense = DenseRows.of(b, share=0.9)
    assert sorted(np.flatnonzero(dense.slot >= 0)) == [3, 17, 40]
    reordered = dense_last(a, dense.slot)
    assert [dense.slot[j] >= 0 for j in reordered.indices[: reordered.indptr[1]]] == sorted(
        dense.slot[j] >= 0 for j in a.indices[: a.indptr[1]]
    )
    want = (reordered.to_scipy() @ b).toarray()  # scipy's kernel in the reordered storage order
    assert not np.array_equal(want, (a @ b).toarray())  # the order matters for these values
    for x, y in ((a, b), (Csr.of(a), Csr.of(b))):
        got = dense_product(x, y, dense=dense)
        assert got.dtype == np.float32 and np.array_equal(got, want)
        as64 = dense_product(x, y, np.float64, dense=dense)
        assert as64.dtype == np.float64 and np.array_equal(as64, want.astype(np.float64))
    # no dense rows at all, or every row dense: the same two-stage code, plain orders
    assert np.array_equal(dense_product(a, b, dense=DenseRows.of(b, share=2.0)), (a @ b).toarray())
    every = DenseRows.of(b, share=0.0)
    assert (every.slot >= 0).all() and np.array_equal(dense_product(a, b, dense=every), (a @ b).toarray())


def test_lexical_similarity_uses_the_catalogue_dense_rows(sample_engine, monkeypatch):
    """prepare_batch's lexical feature is the DenseRows product, the same for a batch and for one name
    (by scipy's kernel, and by the numpy path of a process without scipy)."""
    from nhs_lookup import csr
    from nhs_lookup.csr import dense_last, dense_product

    index = sample_engine.index
    dense = index.char_dense_rows()
    assert 0 < int((dense.slot >= 0).sum()) < len(dense.slot)
    parsed = [sample_engine.parse(q) for q in _varied_queries()[:40]]
    qc = index.char_vectorizer.transform([p.components.clean_text for p in parsed])
    want = (dense_last(qc, dense.slot).to_scipy() @ index.char_name.to_scipy()).toarray()
    assert np.array_equal(dense_product(qc, index.char_name, dense=dense), want)
    batch = index.prepare_batch(parsed)
    for numpy_path in (False, True):
        monkeypatch.setattr(csr, "_numpy_first", lambda numpy_path=numpy_path: numpy_path)
        for i in (0, 7, 39):
            one = index.prepare_batch([parsed[i]])[0]
            assert np.array_equal(one.idx, batch[i].idx)
            assert np.array_equal(one.lexical, batch[i].lexical)
            assert np.array_equal(batch[i].lexical, want[i, batch[i].idx].astype(np.float32))


def test_single_lookup_with_a_warm_cache_does_not_import_scipy(engine_cache_dir, sample_engine):
    """The cached index holds plain arrays: a fresh process answers one name without scipy."""
    import subprocess
    import sys

    code = (
        "import sys; from nhs_lookup.config import LookupConfig; from nhs_lookup.engine import LookupEngine;"
        "from nhs_lookup.records import ExamQuery;"
        f"e = LookupEngine.load(LookupConfig(cache_dir={str(engine_cache_dir)!r}));"
        "r = e.lookup(ExamQuery('CT Abdo/Pelvis C+', None)); print(r.best.entry.name);"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('scipy', 'sklearn')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    name, modules = done.stdout.splitlines()
    assert name == sample_engine.lookup(ExamQuery("CT Abdo/Pelvis C+", None)).best.entry.name
    assert modules == "[]"


@pytest.mark.parametrize("sizes", [(0, 1, 3, 9, 0, 20), (1, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0)])
def test_counts_equal_the_sparse_product_on_dense_and_sparse_hits(sizes):
    """Counts by np.add.at (_overlap) match the product, on dense and sparse hits."""
    import scipy.sparse as sp

    from nhs_lookup.retrieval import _binary

    rng = np.random.default_rng(1)
    m = (sp.random(40, 300, density=0.05, random_state=3, format="csr") > 0).astype(np.float32)
    ids = [sorted(set(rng.integers(0, 40, size=k).tolist())) for k in sizes]
    q = _binary([{str(i) for i in c} for c in ids], {str(i): i for i in range(40)})
    want = (q @ m).toarray()
    got = _counts(ids, m)
    assert want.any() and got.dtype == want.dtype and np.array_equal(got, want)


def test_prepared_features_do_not_depend_on_the_batch_size(sample_engine):
    """prepare_many's batch size changes no feature value; batches of up to csr.SMALL_BATCH rows take
    the numpy product, larger ones scipy's kernel."""
    from dataclasses import fields

    queries = _varied_queries()[:150]
    want = sample_engine.prepare_many(queries, batch_size=512)
    for size in (1, 5, 64):
        got = sample_engine.prepare_many(queries, batch_size=size)
        for a, b in zip(want, got, strict=True):
            for f in (f for f in fields(a) if f.compare):  # not batch_row: where it sits in its batch
                x, y = getattr(a, f.name), getattr(b, f.name)
                if isinstance(x, np.ndarray):
                    assert x.dtype == y.dtype and np.array_equal(x, y), (size, f.name)
                else:
                    assert x == y, (size, f.name)


def test_precomputed_modality_penalty_equals_the_per_batch_expression(sample_engine):
    from nhs_lookup.retrieval import _default_similarity

    index = sample_engine.index
    penalty = index._incompatible_penalty()
    sim = _default_similarity()
    assert penalty.dtype == np.float32 and penalty.any()
    for code in range(sim.shape[0]):
        want = np.float32(0.6) * (sim[[code]][:, index.modality] < 0.65)
        assert np.array_equal(penalty[code], want[0])
    assert "_penalty" not in index.__getstate__()  # the memo stays out of the disk cache


def _dense_retrieval(index, parsed, lex, sem):
    """The retrieval score and anatomy feature as dense (B, N) expressions, term by term (the reference
    for the sparse assembly in CatalogueIndex._retrieval)."""
    from nhs_lookup.retrieval import ANCESTOR_ANATOMY, _expand, _ids
    from nhs_lookup.scoring import MODALITIES
    from nhs_lookup.vocab import default_vocabulary

    def jaccard(inter, q_n, row_n):
        return inter / np.maximum(q_n + row_n[None, :] - inter, np.float32(1.0))

    q_exact = _ids([set(p.components.anatomy) for p in parsed], index.anatomy_vocab)
    q_exp = _ids([_expand(p.components.anatomy, default_vocabulary()) for p in parsed], index.anatomy_vocab)
    q_exact_n = np.array([[len(c)] for c in q_exact], dtype=np.float32)
    q_exp_n = np.array([[len(c)] for c in q_exp], dtype=np.float32)
    j_exact = jaccard(_counts(q_exact, index.anat_exact), q_exact_n, index.anat_exact_n)
    j_exp = jaccard(_counts(q_exp, index.anat_exp), q_exp_n, index.anat_exp_n)
    need = np.where(index.anat_exact_n > 0, index.anat_exact_n, np.inf).astype(np.float32)
    contained = _counts(q_exp, index.anat_exact) >= need[None, :]
    anat = np.float32(0.6) * j_exact + np.float32(0.4) * j_exp
    anat = np.maximum(anat, contained * (np.float32(0.8 * ANCESTOR_ANATOMY) + np.float32(0.3) * j_exp))
    anat[q_exact_n[:, 0] == 0, :] = np.where(index.anat_exact_n == 0, 0.8, 0.4)[None, :]
    q_content = _ids([set(p.content) for p in parsed], index.word_vocab)
    q_content_n = np.array([len(p.content) for p in parsed], dtype=np.float32)[:, None]
    coverage = _counts(q_content, index.all_words) / np.maximum(q_content_n, np.float32(1.0))
    coverage[q_content_n[:, 0] == 0] = np.float32(0.5)
    extra = np.maximum(index.name_words_n[None, :] - _counts(q_content, index.name_words), np.float32(0))
    q_mod = np.array([MODALITIES.get(p.components.modality, 0) for p in parsed], dtype=np.int8)
    mod_eq = (index.modality[None, :] == q_mod[:, None]) & (q_mod[:, None] > 0)
    retrieval = np.float32(0.45) * lex
    for weight, feature in ((0.35, sem), (0.5, anat), (0.3, coverage), (0.4, mod_eq)):
        retrieval = retrieval + feature * np.float32(weight)
    retrieval = retrieval - extra * np.float32(0.03)
    for i, p in enumerate(parsed):
        if p.modality_source == "text":
            retrieval[i] = retrieval[i] - index._incompatible_penalty()[q_mod[i]]
    return retrieval, anat


def test_sparse_retrieval_terms_equal_the_dense_expression(sample_engine):
    """The retrieval score adds its sparse terms only at their overlap cells, and the candidates' anatomy
    feature is computed from gathered counts: both bit for bit the dense expressions."""
    from nhs_lookup.csr import dense_product
    from nhs_lookup.retrieval import _ids, _overlap, _top_k
    from nhs_lookup.scoring import MODALITIES

    index = sample_engine.index
    parsed = [sample_engine.parse(q) for q in _varied_queries()]
    texts = [p.components.clean_text for p in parsed]
    lex = dense_product(index.char_vectorizer.transform(texts), index.char_name)
    sem = index.semantic.similarity(texts)
    want, want_anat = _dense_retrieval(index, parsed, lex, sem)
    assert (want_anat > 0).any() and (want_anat == 0).any()  # queries with and without anatomy overlaps
    q_content = _ids([set(p.content) for p in parsed], index.word_vocab)
    anat = index._anatomy_counts(parsed)
    got = index._retrieval(
        lex,
        sem,
        anat,
        _overlap(q_content, index.all_words),
        np.array([len(p.content) for p in parsed], dtype=np.float32)[:, None],
        np.array([MODALITIES.get(p.components.modality, 0) for p in parsed], dtype=np.int8),
        _overlap(q_content, index.name_words),
        np.flatnonzero([p.modality_source == "text" for p in parsed]),
    )
    assert got.dtype == np.float32 and np.array_equal(got, want)
    prepared = index.prepare_batch(parsed)
    top = _top_k(want.copy(), len(prepared[0].idx))
    assert np.array_equal(np.stack([p.idx for p in prepared]), top)
    want_t = np.take_along_axis(want_anat, top, axis=1)
    assert np.array_equal(np.stack([p.anatomy for p in prepared]), want_t)


def test_batch_scoring_gathers_batch_rows_only_while_the_fields_are_those_rows(sample_engine):
    """score_many reads a batch's fields with one index when every query's arrays are rows of the arrays
    prepare_batch built; a field replaced since (or a query unpickled) is read from the query itself."""
    import pickle
    from dataclasses import replace

    from nhs_lookup import scoring

    cfg = sample_engine.config.scoring
    prepared = sample_engine.prepare_many(_varied_queries()[:60])
    k = len(prepared[0].idx)
    with pytest.MonkeyPatch.context() as mp:  # the fast path does not stack query by query
        mp.setattr(scoring.np, "stack", None)
        assert scoring._stack(prepared, "lexical", k, np.float32).shape == (len(prepared), k)
    changed = list(prepared)
    changed[3] = replace(prepared[3], lexical=np.zeros_like(prepared[3].lexical))
    copies = pickle.loads(pickle.dumps(prepared))
    assert copies[0].lexical.base is None
    frombuffer = [replace(p, lexical=np.frombuffer(p.lexical.tobytes(), np.float32)) for p in prepared]
    assert isinstance(frombuffer[0].lexical.base, bytes)  # a base that is not an array
    for ps in (changed, copies, frombuffer):
        for p, got in zip(ps, scoring.score_many(ps, cfg), strict=True):
            want = scoring.score(p, cfg)
            assert np.array_equal(want.scores, got.scores) and np.array_equal(want.order, got.order)
    assert not np.array_equal(scoring.score(changed[3], cfg).scores, scoring.score(prepared[3], cfg).scores)


def test_row_norms_sum_in_order_like_sklearn():
    """_normalize_rows sums each row's squares one after another in double precision, as sklearn's
    normalisation does (a plain Python loop is the reference), on rows of every length."""
    import math

    from nhs_lookup.csr import Csr
    from nhs_lookup.tfidf import _normalize_rows

    def reference(data: np.ndarray, indptr: np.ndarray) -> np.ndarray:
        squares = (data * data).tolist()
        norms = np.ones(len(data), dtype=np.float64)
        for a, b in zip(indptr[:-1].tolist(), indptr[1:].tolist(), strict=True):
            total = 0.0
            for v in squares[a:b]:
                total += v
            if total != 0.0:
                norms[a:b] = math.sqrt(total)
        return (data.astype(np.float64) / norms).astype(data.dtype)

    rng = np.random.default_rng(5)
    for trial in range(200):
        rows = int(rng.integers(0, 30))
        lens = rng.integers(0, 200, rows) * (rng.random(rows) < 0.9)  # empty rows too
        dtype = np.float32 if trial % 2 else np.float64
        data = (rng.random(int(lens.sum())) * 10 ** rng.uniform(-3, 3, int(lens.sum()))).astype(dtype)
        indptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int32)
        x = Csr(data.copy(), np.zeros(len(data), dtype=np.int32), indptr, (rows, 1))
        _normalize_rows(x)
        assert np.array_equal(x.data, reference(data, indptr)), trial
