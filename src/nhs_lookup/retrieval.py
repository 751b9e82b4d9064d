"""Candidate retrieval and config-independent features, vectorised over the whole catalogue.

One :class:`CatalogueIndex` holds sparse matrices for the catalogue (char n-gram TF-IDF of names and
FSNs, anatomy with and without ancestors, technique tags, content words) plus small integer arrays of
each row's components. :meth:`CatalogueIndex.prepare_batch` turns a batch of parsed queries into
:class:`~nhs_lookup.scoring.PreparedQuery` objects with one sparse product per feature family.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nhs_lookup.catalogue import Catalogue
from nhs_lookup.components import ParsedName
from nhs_lookup.csr import Csr
from nhs_lookup.scoring import (
    CONTRAST_CODES,
    LATERALITY_CODES,
    MODALITIES,
    PreparedQuery,
)
from nhs_lookup.semantic import SemanticBackend, make_backend
from nhs_lookup.tfidf import TfidfModel, dense_product
from nhs_lookup.vocab import Vocabulary, default_vocabulary

RETRIEVE_K = 120
# Techniques that define a different study from the plain examination of the part.
IDENTITY_TECHNIQUES = frozenset(
    {"angiography", "venography", "doppler", "arthrography", "myelography", "colonography", "cholangiography"}
)
# Anatomy that names a tissue or vessel type rather than a region: a row naming only these does not
# contradict a stated body part (an "Angioplasty peroneal" row is of an artery of the lower leg).
TISSUE_ANATOMY = frozenset({"artery", "vein", "soft tissue", "skin", "bone", "lymph node"})
ANCESTOR_ANATOMY = 0.5  # anatomy score of a row naming only regions that contain the stated part
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int8)


def _binary(rows: list[set[str]] | list[tuple[str, ...]], vocab: dict[str, int]) -> object:
    """Binary (len(rows), len(vocab)) scipy CSR matrix of each row's items (index build only)."""
    import scipy.sparse as sp

    indptr, indices = [0], []
    for items in rows:
        cols = sorted({vocab[i] for i in items if i in vocab})
        indices.extend(cols)
        indptr.append(len(indices))
    data = np.ones(len(indices), dtype=np.float32)
    return sp.csr_matrix((data, indices, indptr), shape=(len(rows), len(vocab)))


def _ids(rows: list[set[str]], vocab: dict[str, int]) -> list[list[int]]:
    """Column ids of each row's items (unknown items dropped): a binary query matrix, kept as lists."""
    return [sorted({vocab[i] for i in items if i in vocab}) for items in rows]


def _counts(ids: list[list[int]], m: Csr) -> np.ndarray:
    """Dense (B, N) float32 ``binary(ids) @ m`` for a binary (T, N) matrix *m*: how many of each query's
    ids every catalogue row has. Whole counts, so exactly the sparse product's values, without
    scipy's per-product overhead (most of a single lookup's time). Counted by ``np.add.at`` straight
    into the float32 output (half the time of ``np.unique`` or an int64 ``bincount`` plus a cast)."""
    b, n = len(ids), m.shape[1]
    out = np.zeros(b * n, dtype=np.float32)
    lens_q = [len(c) for c in ids]
    t = np.fromiter((j for c in ids for j in c), dtype=np.int64, count=sum(lens_q))
    starts = m.indptr[t].astype(np.int64)
    lens = m.indptr[t + 1] - starts
    total = int(lens.sum())
    if total:
        rows = np.repeat(np.repeat(np.arange(b, dtype=np.int64), lens_q), lens)
        offsets = np.repeat(starts - (np.cumsum(lens) - lens), lens) + np.arange(total, dtype=np.int64)
        np.add.at(out, rows * n + m.indices[offsets], np.float32(1.0))
    return out.reshape(b, n)


def _jaccard(inter: np.ndarray, q_n: np.ndarray, row_n: np.ndarray) -> np.ndarray:
    """``inter / max(q_n + row_n - inter, 1)`` in float32, computed in one (B, N) buffer."""
    out = q_n + row_n[None, :]
    out -= inter
    np.maximum(out, np.float32(1.0), out=out)
    np.divide(inter, out, out=out)
    return out


def _default_similarity() -> np.ndarray:
    from nhs_lookup.config import ScoringConfig
    from nhs_lookup.scoring import modality_matrix

    return modality_matrix(ScoringConfig(modality_similarity={}))


def _action_mask(actions: frozenset[str], bits: dict[str, int]) -> int:
    mask = 0
    for a in actions:
        mask |= bits.get(a, 0)
    return mask


def _expand(anatomy: tuple[str, ...], vocab: Vocabulary) -> set[str]:
    out: set[str] = set()
    for a in anatomy:
        out.update(vocab.ancestors(a))
    return out


@dataclass
class CatalogueIndex:
    """Matrices and arrays over the catalogue used by retrieval and scoring. The matrices are
    :class:`Csr` records, so the pickled index loads (and a lookup runs) without importing scipy."""

    n: int
    char_vectorizer: TfidfModel  # fitted by scikit-learn at build time; transforms without it
    char_name: Csr  # (V, N): 0.75 x name n-grams + 0.25 x FSN n-grams (one product per batch)
    semantic: SemanticBackend
    anatomy_vocab: dict[str, int]
    anat_exact: Csr  # (T, N)
    anat_exp: Csr
    anat_exact_n: np.ndarray
    anat_exp_n: np.ndarray
    tech_vocab: dict[str, int]
    tech: Csr
    tech_n: np.ndarray
    word_vocab: dict[str, int]
    name_words: Csr  # content words of the name (T, N)
    all_words: Csr  # all tokens of name + FSN (T, N)
    name_words_n: np.ndarray
    anat_region: np.ndarray  # (N,) bool: the row names a body region (not only a tissue or vessel)
    action_bits: dict[str, int]  # canonical action -> bit
    actions: np.ndarray  # (N,) int32 bit mask: actions of the row's name and FSN
    exclusive_actions: int  # bit mask of mutually exclusive actions
    modality: np.ndarray  # int8 codes
    laterality: np.ndarray
    contrast: np.ndarray
    interventional: np.ndarray  # bool
    generality: np.ndarray  # float prior: simpler rows are more common
    context: np.ndarray  # int bitmask
    content_ids: np.ndarray  # id of each row's content-word set (equal ids: same words)
    content_id_of: dict[frozenset[str], int]

    @classmethod
    def build(
        cls, catalogue: Catalogue, semantic_backend: str = "tfidf", semantic_model: str | None = None
    ) -> CatalogueIndex:
        from sklearn.feature_extraction.text import TfidfVectorizer

        vocab = default_vocabulary()
        names = [p.components.clean_text for p in catalogue.parsed]
        fsns = [
            (pf.components.clean_text if pf is not None else n)
            for pf, n in zip(catalogue.parsed_fsn, names, strict=True)
        ]
        vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, dtype=np.float32)
        vec.fit(names + fsns)
        char_name = Csr.of((0.75 * vec.transform(names) + 0.25 * vec.transform(fsns)).T.tocsr())
        semantic = make_backend(semantic_backend, semantic_model)
        semantic.fit([f"{n} {f}" for n, f in zip(names, fsns, strict=True)])

        anatomy_vocab = {a: i for i, a in enumerate(sorted(vocab.anatomy))}
        exact = [set(p.components.anatomy) for p in catalogue.parsed]
        expd = [_expand(p.components.anatomy, vocab) for p in catalogue.parsed]
        tech_vocab = {t: i for i, t in enumerate(sorted(set(vocab.techniques.values())))}
        techs = [set(p.components.technique) for p in catalogue.parsed]
        words: set[str] = set()
        all_tokens = []
        for p, pf in zip(catalogue.parsed, catalogue.parsed_fsn, strict=True):
            toks = set(p.tokens) | set(p.content)
            if pf is not None:
                toks |= set(pf.tokens) | set(pf.content)
            all_tokens.append(toks)
            words.update(toks)
        word_vocab = {w: i for i, w in enumerate(sorted(words))}
        name_content = [set(p.content) for p in catalogue.parsed]
        groups = sorted(vocab.context_groups)
        ctx = np.array(
            [sum(1 << i for i, g in enumerate(groups) if g in p.context) for p in catalogue.parsed],
            dtype=np.int64,
        )
        name_words = _binary(name_content, word_vocab)
        content_id_of: dict[frozenset[str], int] = {}
        action_bits = {a: 1 << i for i, a in enumerate(sorted(set(vocab.actions.values())))}
        # FSN actions count on interventional rows only: a diagnostic row's FSN names actions as its
        # purpose ("CT angiography for transcatheter aortic valve implantation").
        row_actions = [
            _action_mask(
                p.actions | (pf.actions if pf is not None and p.components.interventional else frozenset()),
                action_bits,
            )
            for p, pf in zip(catalogue.parsed, catalogue.parsed_fsn, strict=True)
        ]
        n_content = np.asarray(name_words.sum(axis=1)).ravel()
        return cls(
            n=len(catalogue.entries),
            char_vectorizer=TfidfModel.from_sklearn(vec),
            char_name=char_name,
            semantic=semantic,
            anatomy_vocab=anatomy_vocab,
            anat_exact=Csr.of(_binary(exact, anatomy_vocab).T.tocsr()),
            anat_exp=Csr.of(_binary(expd, anatomy_vocab).T.tocsr()),
            anat_exact_n=np.array([len(a) for a in exact], dtype=np.float32),
            anat_exp_n=np.array([len(a) for a in expd], dtype=np.float32),
            tech_vocab=tech_vocab,
            tech=Csr.of(_binary(techs, tech_vocab).T.tocsr()),
            tech_n=np.array([len(t) for t in techs], dtype=np.float32),
            word_vocab=word_vocab,
            name_words=Csr.of(name_words.T.tocsr()),
            all_words=Csr.of(_binary(all_tokens, word_vocab).T.tocsr()),
            name_words_n=n_content.astype(np.float32),
            modality=np.array(
                [MODALITIES.get(p.components.modality, 0) for p in catalogue.parsed], dtype=np.int8
            ),
            laterality=np.array(
                [LATERALITY_CODES[p.components.laterality] for p in catalogue.parsed], dtype=np.int8
            ),
            contrast=np.array(
                [CONTRAST_CODES[p.components.contrast] for p in catalogue.parsed], dtype=np.int8
            ),
            interventional=np.array([p.components.interventional for p in catalogue.parsed], dtype=bool),
            generality=(1.0 / (1.0 + 0.25 * np.maximum(n_content - 1, 0))).astype(np.float32),
            context=ctx,
            content_ids=np.array(
                [content_id_of.setdefault(p.content, len(content_id_of)) for p in catalogue.parsed],
                dtype=np.int32,
            ),
            content_id_of=content_id_of,
            anat_region=np.array([bool(a - TISSUE_ANATOMY) for a in exact], dtype=bool),
            action_bits=action_bits,
            actions=np.array(row_actions, dtype=np.int32),
            exclusive_actions=_action_mask(vocab.exclusive_actions, action_bits),
        )

    # ------------------------------------------------------------------------------------- queries

    def prepare_batch(self, parsed: list[ParsedName], top_k: int = RETRIEVE_K) -> list[PreparedQuery]:
        """Retrieve candidates and compute every config-independent feature, for a batch of queries."""
        vocab = default_vocabulary()
        if not parsed:
            return []
        texts = [p.components.clean_text for p in parsed]
        qc = self.char_vectorizer.transform(texts)
        lex = dense_product(qc, self.char_name)  # = (qc @ char_name).toarray(), bit for bit
        sem = self.semantic.similarity(texts)

        # Binary query-side matrices as id lists: their products are whole counts (see _counts).
        q_exact = _ids([set(p.components.anatomy) for p in parsed], self.anatomy_vocab)
        q_exp = _ids([_expand(p.components.anatomy, vocab) for p in parsed], self.anatomy_vocab)
        inter_exact = _counts(q_exact, self.anat_exact)
        inter_exp = _counts(q_exp, self.anat_exp)
        q_exact_n = np.array([[len(c)] for c in q_exact], dtype=np.float32)
        q_exp_n = np.array([[len(c)] for c in q_exp], dtype=np.float32)
        j_exact = _jaccard(inter_exact, q_exact_n, self.anat_exact_n)
        j_exp = _jaccard(inter_exp, q_exp_n, self.anat_exp_n)
        # A row whose region contains every stated part ("Lower limb" for "Femur") is a valid, less
        # specific code: it must beat a sibling part ("Foot") that merely shares the parent region.
        need = np.where(self.anat_exact_n > 0, self.anat_exact_n, np.inf).astype(np.float32)
        contained = _counts(q_exp, self.anat_exact) >= need[None, :]
        anat = j_exact
        anat *= np.float32(0.6)
        anat += np.float32(0.4) * j_exp
        # The nearest containing region scores highest (Kidney: "Urinary tract" before "Abdomen").
        np.maximum(anat, contained * (np.float32(0.8 * ANCESTOR_ANATOMY) + np.float32(0.3) * j_exp), out=anat)
        # Query without anatomy: no evidence either way; both empty: agreement.
        no_q = q_exact_n[:, 0] == 0
        anat[no_q, :] = np.where(self.anat_exact_n == 0, 0.8, 0.4)[None, :]

        q_tech = _ids([set(p.components.technique) for p in parsed], self.tech_vocab)
        inter_t_all = _counts(q_tech, self.tech)
        q_tech_n = np.array([[len(c)] for c in q_tech], dtype=np.float32)

        q_content = _ids([set(p.content) for p in parsed], self.word_vocab)
        q_content_n = np.array([len(p.content) for p in parsed], dtype=np.float32)[:, None]
        covered = _counts(q_content, self.all_words)
        coverage = covered
        coverage /= np.maximum(q_content_n, np.float32(1.0))
        coverage[q_content_n[:, 0] == 0] = np.float32(0.5)
        extra_all = _counts(q_content, self.name_words)  # name hits, turned into extra words below

        q_mod = np.array([MODALITIES.get(p.components.modality, 0) for p in parsed], dtype=np.int8)
        mod_eq = (self.modality[None, :] == q_mod[:, None]) & (q_mod[:, None] > 0)
        np.subtract(self.name_words_n[None, :], extra_all, out=extra_all)
        np.maximum(extra_all, np.float32(0.0), out=extra_all)
        # A modality stated in the name makes rows of a dissimilar modality hard violations in scoring:
        # keep them from taking candidate slots (vocabulary similarities; config overrides only soften).
        stated = np.flatnonzero([p.modality_source == "text" for p in parsed])
        retrieval = np.float32(0.45) * lex
        tmp = np.empty_like(retrieval)
        for weight, feature in ((0.35, sem), (0.5, anat), (0.3, coverage), (0.4, mod_eq)):
            np.multiply(feature, np.float32(weight), out=tmp)
            retrieval += tmp
        np.multiply(extra_all, np.float32(0.03), out=tmp)
        retrieval -= tmp
        if len(stated):
            penalty = self._incompatible_penalty()  # = 0.6 x (rows of a dissimilar modality), per code
            for i in stated.tolist():
                retrieval[i] -= penalty[q_mod[i]]
        k = min(top_k, self.n)
        top = np.argpartition(-retrieval, k - 1, axis=1)[:, :k]
        # Candidates best first, and every per-candidate feature, gathered for the whole batch at once.
        order = np.argsort(-np.take_along_axis(retrieval, top, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)

        flat_top = (top + (np.arange(len(parsed)) * self.n)[:, None]).ravel()

        def gather(a: np.ndarray) -> np.ndarray:  # = np.take_along_axis(a, top, axis=1), as float32
            return a.reshape(-1)[flat_top].reshape(top.shape).astype(np.float32, copy=False)

        lex_t, sem_t, anat_t, cov_t, extra_t = (gather(a) for a in (lex, sem, anat, coverage, extra_all))
        inter_t = gather(inter_t_all)
        union_t = q_tech_n + self.tech_n[top] - inter_t
        tech_t = np.where(union_t == 0, 1.0, inter_t / np.maximum(union_t, 1.0)).astype(np.float32)
        return self._prepared(parsed, top, q_mod, q_content_n, (lex_t, sem_t, anat_t, tech_t, cov_t, extra_t))

    def _incompatible_penalty(self) -> np.ndarray:
        """(modality codes, N) float32: ``np.float32(0.6) * (similarity < 0.65)`` of every row's modality
        to each query modality (the default vocabulary similarities), built once per index."""
        cached = self.__dict__.get("_penalty")
        if cached is None:
            cached = np.float32(0.6) * (_default_similarity()[:, self.modality] < 0.65)
            self.__dict__["_penalty"] = cached
        return cached

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}  # memos stay out of caches

    def _prepared(
        self,
        parsed: list[ParsedName],
        top: np.ndarray,
        q_mod: np.ndarray,
        q_content_n: np.ndarray,
        feats: tuple[np.ndarray, ...],
    ) -> list[PreparedQuery]:
        """One :class:`PreparedQuery` per query; row attributes gathered for the whole batch at once
        (each query's arrays are rows of the batch arrays, the same values as per-query gathers)."""
        groups = sorted(default_vocabulary().context_groups)
        ctx = np.array([sum(1 << i for i, g in enumerate(groups) if g in p.context) for p in parsed])
        content = np.array([self.content_id_of.get(p.content, -1) for p in parsed], dtype=np.int64)
        same_content = self.content_ids[top] == content[:, None]
        shared_context = _POPCOUNT[self.context[top] & ctx[:, None]]
        idx32 = top.astype(np.int32)
        cand = [
            a[top]
            for a in (
                self.modality,
                self.laterality,
                self.contrast,
                self.interventional,
                self.generality,
                self.actions,
                self.anat_region,
            )
        ]
        lex_t, sem_t, anat_t, tech_t, cov_t, extra_t = feats
        out = []
        for qi, p in enumerate(parsed):
            c = p.components
            out.append(
                PreparedQuery(
                    components=c,
                    idx=idx32[qi],
                    lexical=lex_t[qi],
                    semantic=sem_t[qi],
                    anatomy=anat_t[qi],
                    technique=tech_t[qi],
                    coverage=cov_t[qi],
                    extra_words=extra_t[qi],
                    cand_modality=cand[0][qi],
                    cand_laterality=cand[1][qi],
                    cand_contrast=cand[2][qi],
                    cand_interventional=cand[3][qi],
                    cand_generality=cand[4][qi],
                    shared_context=shared_context[qi],
                    same_content=same_content[qi],
                    q_modality=int(q_mod[qi]),
                    q_modality_source=p.modality_source,
                    q_laterality=LATERALITY_CODES[c.laterality],
                    q_bilateral_implied=p.bilateral_implied,
                    q_unilateral="unilateral" in p.tokens,
                    q_contrast=CONTRAST_CODES[c.contrast],
                    q_interventional=c.interventional,
                    q_content_n=int(q_content_n[qi, 0]),
                    q_unspecific=p.unspecific,
                    non_clinical=c.non_clinical,
                    q_interventional_neutral=p.interventional_neutral,
                    cand_action=cand[5][qi],
                    q_action=_action_mask(p.actions, self.action_bits),
                    exclusive_actions=self.exclusive_actions,
                    q_modality_only=p.modality_only,
                    cand_has_anatomy=cand[6][qi],
                    q_identity_technique=bool(IDENTITY_TECHNIQUES & set(c.technique)),
                )
            )
        return out
