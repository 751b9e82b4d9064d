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
from nhs_lookup.csr import Csr, DenseRows, dense_product, ranges
from nhs_lookup.scoring import (
    CONTRAST_CODES,
    LATERALITY_CODES,
    MODALITIES,
    PreparedQuery,
)
from nhs_lookup.semantic import SemanticBackend, make_backend
from nhs_lookup.tfidf import TfidfModel
from nhs_lookup.vocab import Vocabulary, default_vocabulary
from nhs_lookup.workspace import Workspace, workspace

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


@dataclass
class _Overlap:
    """How many of each query's ids every catalogue row has: dense (B, N) float32 whole *counts*, and
    the flat cells (query x N + row) where a count is not zero, a cell listed once per shared id."""

    counts: np.ndarray
    cells: np.ndarray
    name: str = ""  # the workspace buffer holding the counts ("": not from a workspace)


def _overlap(ids: list[list[int]], m: Csr, work: Workspace | None = None, name: str = "") -> _Overlap:
    """``binary(ids) @ m`` for a binary (T, N) matrix *m*, counted by ``np.add.at`` straight into the
    float32 output: whole counts, so exactly the sparse product's values, without scipy's per-product
    overhead (most of a single lookup's time) or a sort (half the time of ``np.unique``). *work*: the
    counts are the workspace buffer *name* (valid until the next batch)."""
    b, n = len(ids), m.shape[1]
    out = work.zeros(name, (b * n,), np.float32) if work is not None else np.zeros(b * n, dtype=np.float32)
    lens_q = [len(c) for c in ids]
    t = np.fromiter((j for c in ids for j in c), dtype=np.int64, count=sum(lens_q))
    starts = m.indptr[t].astype(np.int64)
    lens = m.indptr[t + 1] - starts
    total = int(lens.sum())
    cells = np.zeros(0, dtype=np.int64)
    if total:
        rows = np.repeat(np.repeat(np.arange(b, dtype=np.int64), lens_q), lens)
        cells = rows * n + m.indices[ranges(starts, lens)]
        np.add.at(out, cells, np.float32(1.0))
    return _Overlap(out.reshape(b, n), cells, name if work is not None else "")


def _jaccard(inter: np.ndarray, q_n: np.ndarray, row_n: np.ndarray) -> np.ndarray:
    """``inter / max(q_n + row_n - inter, 1)`` in float32, computed in one buffer (the arguments
    broadcast to the shape of *inter*)."""
    out = q_n + row_n
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
class _AnatomyCounts:
    """(B, N) whole counts of a batch's anatomy overlaps: exact terms, expanded terms (with
    ancestors), and the query's expanded terms among the row's exact ones (row region contains the
    stated part), with each query's term counts."""

    exact: _Overlap
    expanded: _Overlap
    contained: _Overlap
    q_exact_n: np.ndarray  # (B, 1)
    q_exp_n: np.ndarray

    @property
    def no_query(self) -> np.ndarray:
        """(B,) queries that state no anatomy."""
        return self.q_exact_n[:, 0] == 0


def _extra_words(hits: np.ndarray, row_words: np.ndarray) -> np.ndarray:
    """Content words of the row's name that the query lacks (float32)."""
    out = row_words - hits
    np.maximum(out, np.float32(0.0), out=out)
    return out


def _top_k(retrieval: np.ndarray, k: int) -> np.ndarray:
    """(B, k) rows of the k highest scores of each query, best first (*retrieval* is overwritten)."""
    neg = np.negative(retrieval, out=retrieval)
    top = np.argpartition(neg, k - 1, axis=1)[:, :k]
    order = np.argsort(np.take_along_axis(neg, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


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
        if not parsed:
            return []
        work = workspace()  # this thread's scratch arrays: none of them outlives the batch
        texts = [p.components.clean_text for p in parsed]
        qc = self.char_vectorizer.transform(texts)
        lex = dense_product(qc, self.char_name, None, work, "lexical", self.char_dense_rows())
        sem = self.semantic.similarity(texts, work)
        anat = self._anatomy_counts(parsed, work)
        q_tech = _ids([set(p.components.technique) for p in parsed], self.tech_vocab)
        q_content = _ids([set(p.content) for p in parsed], self.word_vocab)
        q_content_n = np.array([len(p.content) for p in parsed], dtype=np.float32)[:, None]
        covered = _overlap(q_content, self.all_words, work, "covered")
        name_hits = _overlap(q_content, self.name_words, work, "name_hits")  # the row's name words it has
        q_mod = np.array([MODALITIES.get(p.components.modality, 0) for p in parsed], dtype=np.int8)
        # A modality stated in the name makes rows of a dissimilar modality hard violations in scoring:
        # keep them from taking candidate slots (vocabulary similarities; config overrides only soften).
        stated = np.flatnonzero([p.modality_source == "text" for p in parsed])
        retrieval = self._retrieval(lex, sem, anat, covered, q_content_n, q_mod, name_hits, stated, work)
        top = _top_k(retrieval, min(top_k, self.n))
        # Every per-candidate feature, gathered for the whole batch at once.
        flat_top = top + (np.arange(len(parsed)) * self.n)[:, None]

        def gather(a: np.ndarray) -> np.ndarray:  # = np.take_along_axis(a, top, axis=1), as float32
            return a.reshape(-1)[flat_top].astype(np.float32, copy=False)

        lex_t, sem_t = gather(lex), gather(sem)
        counts_t = tuple(gather(o.counts) for o in (anat.exact, anat.expanded, anat.contained))
        anat_t = self._anatomy_score(top, counts_t, (anat.q_exact_n, anat.q_exp_n))
        anat_t[anat.no_query] = self._no_anatomy_score()[top[anat.no_query]]
        cov_t = gather(covered.counts)
        cov_t /= np.maximum(q_content_n, np.float32(1.0))
        cov_t[q_content_n[:, 0] == 0] = np.float32(0.5)
        extra_t = _extra_words(gather(name_hits.counts), self.name_words_n[top])
        technique = _overlap(q_tech, self.tech, work, "technique")
        inter_t = gather(technique.counts)
        q_tech_n = np.array([[len(c)] for c in q_tech], dtype=np.float32)
        union_t = q_tech_n + self.tech_n[top] - inter_t
        tech_t = np.where(union_t == 0, 1.0, inter_t / np.maximum(union_t, 1.0)).astype(np.float32)
        for o in (anat.exact, anat.expanded, anat.contained, covered, name_hits, technique):
            work.rezero(o.name, np.float32, o.cells)  # the counts are zero again but for a few cells
        return self._prepared(parsed, top, q_mod, q_content_n, (lex_t, sem_t, anat_t, tech_t, cov_t, extra_t))

    def _anatomy_counts(self, parsed: list[ParsedName], work: Workspace | None = None) -> _AnatomyCounts:
        """Whole-count anatomy overlaps of every query with every row (see :class:`_AnatomyCounts`)."""
        vocab = default_vocabulary()
        q_exact = _ids([set(p.components.anatomy) for p in parsed], self.anatomy_vocab)
        q_exp = _ids([_expand(p.components.anatomy, vocab) for p in parsed], self.anatomy_vocab)
        return _AnatomyCounts(
            exact=_overlap(q_exact, self.anat_exact, work, "anatomy_exact"),
            expanded=_overlap(q_exp, self.anat_exp, work, "anatomy_expanded"),
            contained=_overlap(q_exp, self.anat_exact, work, "anatomy_contained"),
            q_exact_n=np.array([[len(c)] for c in q_exact], dtype=np.float32),
            q_exp_n=np.array([[len(c)] for c in q_exp], dtype=np.float32),
        )

    def _anatomy_score(
        self,
        rows: np.ndarray,
        counts: tuple[np.ndarray, np.ndarray, np.ndarray],
        q_n: tuple[np.ndarray, np.ndarray],
    ) -> np.ndarray:
        """Anatomy score of (query, catalogue row) pairs that state anatomy, from their *counts*
        (exact, expanded, contained; see :class:`_AnatomyCounts`) and the query's exact and expanded
        term counts *q_n*, all broadcasting to the shape of *rows* ((B, k) candidates or flat cells)."""
        exact, expanded, contained = counts
        q_exact_n, q_exp_n = q_n
        j_exact = _jaccard(exact, q_exact_n, self.anat_exact_n[rows])
        j_exp = _jaccard(expanded, q_exp_n, self.anat_exp_n[rows])
        # A row whose region contains every stated part ("Lower limb" for "Femur") is a valid, less
        # specific code: it must beat a sibling part ("Foot") that merely shares the parent region.
        need = self.anat_exact_n[rows]
        within = (contained >= need) & (need > 0)
        score = j_exact
        score *= np.float32(0.6)
        score += np.float32(0.4) * j_exp
        # The nearest containing region scores highest (Kidney: "Urinary tract" before "Abdomen").
        np.maximum(score, within * (np.float32(0.8 * ANCESTOR_ANATOMY) + np.float32(0.3) * j_exp), out=score)
        return score

    def _no_anatomy_score(self) -> np.ndarray:
        """(N,) anatomy score of every row for a query without anatomy: no evidence either way (0.4);
        both empty: agreement (0.8)."""
        return np.where(self.anat_exact_n == 0, np.float32(0.8), np.float32(0.4)).astype(np.float32)

    def _retrieval(
        self,
        lex: np.ndarray,
        sem: np.ndarray,
        anat: _AnatomyCounts,
        covered: _Overlap,
        q_content_n: np.ndarray,
        q_mod: np.ndarray,
        name_hits: _Overlap,
        stated: np.ndarray,
        work: Workspace | None = None,
    ) -> np.ndarray:
        """(B, N) retrieval score: 0.45 lexical + 0.35 semantic + 0.5 anatomy + 0.3 coverage + 0.4 same
        modality - 0.03 extra name words, minus the stated-modality penalty, summed in that order.
        The sparse terms are added only at their overlap cells (adding 0 leaves a float32 sum as it
        is, so every value is bit for bit the dense expression's, for a fraction of the passes). A cell
        listed twice is assigned the same value twice."""
        n = self.n
        work = work or Workspace()
        retrieval = np.multiply(lex, np.float32(0.45), out=work.empty("retrieval", lex.shape, np.float32))
        tmp = np.multiply(sem, np.float32(0.35), out=work.empty("term", lex.shape, np.float32))
        retrieval += tmp
        flat = retrieval.reshape(-1)
        # Every non-zero anatomy score has an expanded overlap: the exact anatomy and the parts a
        # region contains are among the expanded terms on both sides.
        cells = anat.expanded.cells
        q_of, row_of = np.divmod(cells, n)
        counts = tuple(o.counts.reshape(-1)[cells] for o in (anat.exact, anat.expanded, anat.contained))
        score = self._anatomy_score(row_of, counts, (anat.q_exact_n[q_of, 0], anat.q_exp_n[q_of, 0]))
        flat[cells] += np.float32(0.5) * score
        retrieval[anat.no_query] += np.float32(0.5) * self._no_anatomy_score()
        cells = covered.cells
        share = covered.counts.reshape(-1)[cells] / np.maximum(q_content_n[cells // n, 0], np.float32(1.0))
        flat[cells] += np.float32(0.3) * share
        retrieval[q_content_n[:, 0] == 0] += np.float32(0.5) * np.float32(0.3)
        retrieval += np.take(self._same_modality(), q_mod, axis=0, out=tmp)  # 0.4 on the query's modality
        cells = name_hits.cells
        before = flat[cells]
        retrieval -= np.float32(0.03) * self.name_words_n  # 0.03 x extra name words, for rows without hits
        extra = _extra_words(name_hits.counts.reshape(-1)[cells], self.name_words_n[cells % n])
        flat[cells] = before - np.float32(0.03) * extra
        if len(stated):
            penalty = self._incompatible_penalty()  # = 0.6 x (rows of a dissimilar modality), per code
            for i in stated.tolist():
                retrieval[i] -= penalty[q_mod[i]]
        return retrieval

    def _same_modality(self) -> np.ndarray:
        """(modality codes, N) float32: 0.4 where the row has the code (code 0, unknown: nowhere), as
        ``np.float32(0.4) * (modality == code)``; built once per index."""
        table = self.__dict__.get("_same_modality_table")
        if table is None:
            codes = np.arange(max(int(self.modality.max(initial=0)), max(MODALITIES.values())) + 1)
            same = (self.modality[None, :] == codes[:, None]) & (codes[:, None] > 0)
            table = self.__dict__["_same_modality_table"] = np.float32(0.4) * same
        return table

    def _incompatible_penalty(self) -> np.ndarray:
        """(modality codes, N) float32: ``np.float32(0.6) * (similarity < 0.65)`` of every row's modality
        to each query modality (the default vocabulary similarities), built once per index."""
        cached = self.__dict__.get("_penalty")
        if cached is None:
            cached = np.float32(0.6) * (_default_similarity()[:, self.modality] < 0.65)
            self.__dict__["_penalty"] = cached
        return cached

    def char_dense_rows(self) -> DenseRows:
        """The n-gram rows of :attr:`char_name` that most rows hold, summed last from dense copies
        (:class:`~nhs_lookup.csr.DenseRows`; built once per index, the dense copies on first use)."""
        cached = self.__dict__.get("_char_dense")
        if cached is None:
            cached = self.__dict__["_char_dense"] = DenseRows.of(self.char_name)
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
        bit = {g: 1 << i for i, g in enumerate(sorted(default_vocabulary().context_groups))}
        ctx = np.array([sum(bit.get(g, 0) for g in p.context) for p in parsed], dtype=np.int64)
        content = np.array([self.content_id_of.get(p.content, -1) for p in parsed], dtype=np.int64)
        same_content = self.content_ids[top] == content[:, None]
        shared_context = _POPCOUNT[self.context[top] & ctx[:, None]]
        per_row = (
            top.astype(np.int32),
            *feats,  # lexical, semantic, anatomy, technique, coverage, extra words
            *(a[top] for a in (self.modality, self.laterality, self.contrast, self.interventional)),
            *(a[top] for a in (self.generality, self.actions, self.anat_region)),
            shared_context,
            same_content,
        )
        out = []
        # Iterating the (B, k) arrays yields each query's row (a view), as indexing them would.
        for qi, (p, q_m, q_cn, rows) in enumerate(
            zip(parsed, q_mod.tolist(), q_content_n[:, 0].tolist(), zip(*per_row, strict=True), strict=True)
        ):
            (
                idx,
                lex,
                sem,
                anat,
                tech,
                cov,
                extra,
                c_mod,
                c_lat,
                c_con,
                c_int,
                c_gen,
                c_act,
                c_reg,
                ctx_n,
                same,
            ) = rows
            c = p.components
            out.append(
                PreparedQuery(
                    components=c,
                    idx=idx,
                    lexical=lex,
                    semantic=sem,
                    anatomy=anat,
                    technique=tech,
                    coverage=cov,
                    extra_words=extra,
                    cand_modality=c_mod,
                    cand_laterality=c_lat,
                    cand_contrast=c_con,
                    cand_interventional=c_int,
                    cand_generality=c_gen,
                    shared_context=ctx_n,
                    same_content=same,
                    q_modality=q_m,
                    q_modality_source=p.modality_source,
                    q_laterality=LATERALITY_CODES[c.laterality],
                    q_bilateral_implied=p.bilateral_implied,
                    q_unilateral="unilateral" in p.tokens,
                    q_contrast=CONTRAST_CODES[c.contrast],
                    q_interventional=c.interventional,
                    q_content_n=int(q_cn),
                    q_unspecific=p.unspecific,
                    non_clinical=c.non_clinical,
                    q_interventional_neutral=p.interventional_neutral,
                    cand_action=c_act,
                    q_action=_action_mask(p.actions, self.action_bits),
                    exclusive_actions=self.exclusive_actions,
                    q_modality_only=p.modality_only,
                    cand_has_anatomy=c_reg,
                    q_identity_technique=not IDENTITY_TECHNIQUES.isdisjoint(c.technique),
                    batch_row=qi,
                )
            )
        return out
