"""Scoring: turn a :class:`PreparedQuery` (config-independent features of ~100 candidates) into ranked
scores under a :class:`~nhs_lookup.config.ScoringConfig`. Pure, vectorised numpy.

Follows the seed engine's formula (origin doc section 1.10): a weighted component score (anatomy,
modality, laterality, contrast, technique), a semantic score and a frequency prior, blended with
``weights_final``; interventional bonus/penalty; context bonus; a multiplicative specificity penalty;
exact / synonym bonuses. Hard clinical constraints then subtract a large constant so they beat any
soft score: a diagnostic exam never maps to an interventional row, and stated laterality and stated
contrast must agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nhs_lookup.config import ScoringConfig
from nhs_lookup.records import Components
from nhs_lookup.vocab import default_vocabulary

MODALITY_LIST = ("XR", "CT", "MRI", "US", "NM", "PET", "MG", "FL", "IR", "DEXA", "MP")
MODALITIES = {m: i + 1 for i, m in enumerate(MODALITY_LIST)}  # 0 = unknown
LATERALITY_CODES = {None: 0, "left": 1, "right": 2, "bilateral": 3}
CONTRAST_CODES = {None: 0, "with": 1, "without": 2, "with_and_without": 3, "oral": 4}
HARD_PENALTY = 1.0
UNSTATED_SIDE_PENALTY = 0.08  # default of ScoringConfig.laterality_unstated_penalty (kept for imports)


@dataclass
class PreparedQuery:
    """Config-independent features of one query's retrieved candidates (picklable, compact)."""

    components: Components
    idx: np.ndarray  # catalogue row indices, retrieval order (best first)
    lexical: np.ndarray
    semantic: np.ndarray
    anatomy: np.ndarray
    technique: np.ndarray
    coverage: np.ndarray  # share of the query's content words found in the row (name + FSN)
    extra_words: np.ndarray  # row-name content words absent from the query
    cand_modality: np.ndarray
    cand_laterality: np.ndarray
    cand_contrast: np.ndarray
    cand_interventional: np.ndarray
    cand_generality: np.ndarray
    shared_context: np.ndarray
    same_content: np.ndarray  # normalised content words identical (synonym-level match)
    q_modality: int
    q_modality_source: str | None
    q_laterality: int
    q_bilateral_implied: bool
    q_unilateral: bool
    q_contrast: int
    q_interventional: bool
    q_content_n: int
    q_unspecific: bool
    non_clinical: str | None = None
    q_interventional_neutral: bool = False  # sentinel node etc.: injection is part of the study
    cand_action: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))  # action bits
    q_action: int = 0  # bit mask of the actions the name states
    exclusive_actions: int = 0  # bit mask of mutually exclusive actions (insert/remove/exchange)
    q_modality_only: bool = False  # the name states nothing beyond a modality
    cand_has_anatomy: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    q_identity_technique: bool = False  # the name states a technique that defines the study (angiography...)
    # Row of this query in the (B, k) arrays its per-candidate fields are views of (-1: none); lets
    # score_many gather a batch's fields with one index instead of stacking them query by query.
    batch_row: int = field(default=-1, repr=False, compare=False)


@dataclass
class RankOutput:
    """Scores of the first ``k`` candidates, sorted best first (indices into the prepared arrays)."""

    order: np.ndarray
    scores: np.ndarray
    component: dict[str, np.ndarray]
    semantic: np.ndarray
    hard: np.ndarray  # number of hard constraints violated


_MATRIX_CACHE: dict[str, np.ndarray] = {}
# id(table) -> (table, a copy of it, matrix): one entry, for the config every call of a run shares
_LAST_TABLE: dict[int, tuple[dict, dict, np.ndarray]] = {}


def modality_matrix(scoring: ScoringConfig) -> np.ndarray:
    """Similarity of canonical modalities: vocabulary defaults overlaid with the config table."""
    table = scoring.modality_similarity
    last = _LAST_TABLE.get(id(table))
    if last is not None and last[0] is table and last[1] == table:
        return last[2]  # the same (unchanged) table as the previous call: skip building the key
    key = repr(sorted((k, sorted(v.items())) for k, v in table.items()))
    m = _MATRIX_CACHE.get(key)
    if m is None:
        m = _MATRIX_CACHE[key] = _build_matrix(scoring)
    _LAST_TABLE.clear()
    _LAST_TABLE[id(table)] = (table, {k: dict(v) for k, v in table.items()}, m)
    return m


def _build_matrix(scoring: ScoringConfig) -> np.ndarray:
    vocab = default_vocabulary()
    n = len(MODALITY_LIST) + 1
    m = np.zeros((n, n), dtype=np.float32)
    np.fill_diagonal(m, 1.0)
    m[0, :] = m[:, 0] = 0.5  # unknown modality on either side: neutral
    for (a, b), v in vocab.modality_similarity.items():
        if a in MODALITIES and b in MODALITIES:
            m[MODALITIES[a], MODALITIES[b]] = v
    for a_name, row in scoring.modality_similarity.items():
        a = vocab.canonical_modality(a_name)
        for b_name, v in row.items():
            b = vocab.canonical_modality(b_name)
            if a in MODALITIES and b in MODALITIES and a != b:
                m[MODALITIES[a], MODALITIES[b]] = m[MODALITIES[b], MODALITIES[a]] = float(v)
    return m


def laterality_scores(
    p: PreparedQuery, k: int, scoring: ScoringConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(soft score, hard violation) for the first k candidates (table look-ups by row laterality
    code: 0 unstated, 1 left, 2 right, 3 bilateral)."""
    null = scoring.laterality_null_score if scoring is not None else 0.7
    c = p.cand_laterality[:k]
    q = p.q_laterality
    hard = np.zeros(k, dtype=np.float32)
    if q == 0:
        table = (0.8, 0.9, 0.9, 0.5) if p.q_unilateral else (1.0, 0.55, 0.55, 0.9)
    elif p.q_bilateral_implied:
        table = (0.85, 0.5, 0.5, 1.0)
    else:
        table = tuple(1.0 if code == q else null if code == 0 else 0.0 for code in range(4))
        hard = ((c != q) & (c != 0)).astype(np.float32)
    return np.asarray(table, dtype=np.float32)[c], hard


def contrast_scores(p: PreparedQuery, k: int, scoring: ScoringConfig) -> tuple[np.ndarray, np.ndarray]:
    """(soft score, hard violation); row codes 0 unstated, 1 with, 2 without, 3 with and without, 4 oral."""
    c = p.cand_contrast[:k]
    q = p.q_contrast
    null, mismatch = scoring.contrast_null_score, scoring.contrast_mismatch_score
    hard = np.zeros(k, dtype=np.float32)
    if q == 0:
        table = (1.0, null, null, null, null)
    elif q == 2:  # stated "without": rows without a qualifier are the plain studies
        table = (0.95, mismatch, 1.0, mismatch, mismatch)
        hard = ((c == 1) | (c == 3) | (c == 4)).astype(np.float32)
    elif q == 1:
        table = (null, 1.0, mismatch, 0.8, mismatch)
        hard = (c == 2).astype(np.float32)
    elif q == 3:
        table = (null, 0.85, mismatch, 1.0, mismatch)
    else:  # oral
        table = (null, mismatch, mismatch, mismatch, 1.0)
    return np.asarray(table, dtype=np.float32)[c], hard


def action_scores(p: PreparedQuery, k: int, scoring: ScoringConfig) -> tuple[np.ndarray, np.ndarray]:
    """(additive adjustment, hard violation) from the procedure actions of name and rows.

    A stated action the row lacks while the row states another one (biopsy vs drainage), or an
    exclusive action against another (insertion vs removal), is a hard violation like laterality."""
    ca = p.cand_action[:k] if len(p.cand_action) else np.zeros(k, dtype=np.int32)
    q = p.q_action
    if p.q_interventional_neutral:  # sentinel node: injection and localisation are the study itself
        return np.zeros(k, np.float32), np.zeros(k, np.float32)
    if not q:
        return (-scoring.action_unstated_penalty * (ca != 0)).astype(np.float32), np.zeros(k, np.float32)
    shared = (ca & q) != 0
    excl = p.exclusive_actions
    conflict = (q & excl) != 0
    hard = ((ca != 0) & ~shared) | (conflict & ((ca & excl) != 0) & ((ca & q & excl) == 0))
    adj = np.where(shared, scoring.action_match_bonus, 0.0) - np.where(
        ca == 0, scoring.action_missing_penalty, 0.0
    )
    return adj.astype(np.float32), hard.astype(np.float32)


def score(p: PreparedQuery, scoring: ScoringConfig) -> RankOutput:
    """Score the first ``scoring.retriever_top_k`` candidates and sort them (best first)."""
    k = max(1, min(int(scoring.retriever_top_k), len(p.idx)))
    wc, wf = scoring.weights_component, scoring.weights_final
    mm = modality_matrix(scoring)
    mod = mm[p.q_modality, p.cand_modality[:k]]
    lat, lat_hard = laterality_scores(p, k, scoring)
    con, con_hard = contrast_scores(p, k, scoring)
    anat = p.anatomy[:k]
    tech = p.technique[:k]
    component = (
        wc.anatomy * anat + wc.modality * mod + wc.laterality * lat + wc.contrast * con + wc.technique * tech
    )
    semantic = (0.3 * p.lexical[:k] + 0.3 * p.semantic[:k] + 0.4 * p.coverage[:k]).astype(np.float32)
    total = wf.component * component + wf.semantic * semantic + wf.frequency * p.cand_generality[:k]
    cand_int = p.cand_interventional[:k]
    if p.q_interventional and not p.q_interventional_neutral:
        total = total + np.where(cand_int, scoring.interventional_bonus, scoring.interventional_penalty)
    total = total + scoring.context_match_bonus * p.shared_context[:k]
    total = total * np.maximum(1.0 - scoring.specificity_penalty_weight * p.extra_words[:k], 0.3)
    # Same content words but a contrast qualifier the name does not state is not a synonym-level match.
    # A row lacking a stated technique (angiography, Doppler) is not a synonym-level match either.
    same = p.same_content[:k] & (con >= 0.95) & (tech >= 0.99)
    total = total + scoring.synonym_match_bonus * same
    exact = same & (lat == 1.0) & (con == 1.0) & (mod == 1.0)
    total = total + scoring.exact_match_bonus * exact
    act, act_hard = action_scores(p, k, scoring)
    total = total + act
    if p.components.anatomy and len(p.cand_has_anatomy):
        # A row about another body part (no shared or containing region) is wrong, not just weaker.
        total = total - scoring.anatomy_mismatch_penalty * (p.cand_has_anatomy[:k] & (anat <= 0.0))
    if p.q_identity_technique and not p.q_action:
        # A stated angiography / Doppler / arthrography... study is not the plain study of the part
        # (in a procedure name the same words describe the guidance, not the study).
        total = total - scoring.technique_missing_penalty * (tech <= 0.0)
    cand_con = p.cand_contrast[:k]
    if p.q_contrast == 0:
        # Unstated contrast: the labelling rule prefers the row without a contrast qualifier.
        total = total - scoring.contrast_unstated_penalty * ((cand_con == 1) | (cand_con == 3))
    if p.q_modality_source == "code" and p.q_modality != MODALITIES["IR"]:
        # No modality word: the RIS code decides (IR codes book guided work of several modalities).
        total = total - scoring.code_modality_penalty * (mod < 0.65)
    # Hard constraints (config-independent): each violation costs more than any soft score can add.
    hard = lat_hard + con_hard + act_hard
    if not p.q_interventional and not p.q_interventional_neutral:
        hard = hard + cand_int.astype(np.float32)
    if p.q_modality_source == "text":
        hard = hard + (mod < 0.65).astype(np.float32)
    if p.q_laterality == 0 and not p.q_unilateral:
        # Unstated laterality: a left/right-specific row is a guess the name does not support.
        side_only = (p.cand_laterality[:k] == 1) | (p.cand_laterality[:k] == 2)
        total = total - scoring.laterality_unstated_penalty * side_only
    total = np.maximum(total, 0.0) - HARD_PENALTY * hard
    # Deterministic order whatever the retrieval path (single or batched sparse products can differ
    # in the last float bits): score rounded to 1e-6, ties broken by catalogue row.
    order = np.lexsort((p.idx[:k], -np.round(total, 6)))
    return RankOutput(
        order=order,
        scores=total[order],
        component={
            "anatomy": anat[order],
            "modality": mod[order],
            "laterality": lat[order],
            "contrast": con[order],
            "technique": tech[order],
        },
        semantic=semantic[order],
        hard=hard[order],
    )


def calibrate(top: float, margin: float, hard: float) -> float:
    """Map the raw top score and top-2 margin to a probability-like confidence in [0, 1].

    A logistic curve whose coefficients were set so that, on the development gold set, accuracy
    within each confidence band roughly matches the band (see docs/nhs_lookup_engine.md).
    """
    if hard > 0:
        return float(0.05 / (1.0 + np.exp(-8.0 * (top + hard))))
    z = CAL_A * (top - CAL_B) + CAL_C * min(margin, 0.3)
    return float(1.0 / (1.0 + np.exp(-z)))


CAL_A, CAL_B, CAL_C = 3.6, 0.62, 4.0


# ---------------------------------------------------------------------------------- batch scoring
# score_many() repeats score()'s arithmetic on (B, k) arrays, operation for operation and in the same
# dtypes, so every query's scores are bit-identical to score()'s (tests/nhs_lookup/test_speed_paths.py).
# A term that score() adds only under a per-query condition is added here as a masked term: x + 0.0 == x.


def _stack(ps: list[PreparedQuery], name: str, k: int, dtype: type) -> np.ndarray:
    """(B, k) array of a per-candidate field, in the queries' own dtype (an empty optional field reads
    as zeros of *dtype*, as score() reads it)."""
    arrays = [getattr(p, name) for p in ps]
    base = arrays[0].base
    full_rows = isinstance(base, np.ndarray) and base.ndim == 2 and base.shape[1] == len(arrays[0]) >= k
    if full_rows and all(a.base is base for a in arrays):
        rows = [p.batch_row for p in ps]
        if min(rows) >= 0:  # each query's field is row batch_row of one (B, k) array: the same values
            return base[rows, :k]
    dtypes = {a.dtype for a in arrays if len(a)}
    if len(dtypes) > 1:
        raise _MixedDtypes(name)
    if all(len(a) >= k for a in arrays):
        return np.stack([a[:k] for a in arrays])
    out = np.zeros((len(ps), k), dtype=dtypes.pop() if dtypes else dtype)
    for i, a in enumerate(arrays):
        if len(a):
            out[i] = a[:k]
    return out


class _MixedDtypes(Exception):
    """Prepared queries of one batch hold a field in different dtypes: score them one by one."""


def _row(ps: list[PreparedQuery], fn, dtype: type = bool) -> np.ndarray:
    """(B, 1) column of a per-query value."""
    return np.array([fn(p) for p in ps], dtype=dtype)[:, None]


def _lookup(tables: np.ndarray, codes: np.ndarray) -> np.ndarray:
    return np.take_along_axis(tables, codes.astype(np.intp), axis=1)


def _laterality_many(ps: list[PreparedQuery], c: np.ndarray, scoring: ScoringConfig):
    """laterality_scores() for the batch: per-row tables of the same float32 values."""
    null = scoring.laterality_null_score
    q = _row(ps, lambda p: p.q_laterality, np.int64)
    uni = _row(ps, lambda p: p.q_unilateral)
    bil = _row(ps, lambda p: p.q_bilateral_implied)
    stated = (q != 0) & ~bil
    tables = np.empty((len(ps), 4), dtype=np.float32)
    for i in range(len(ps)):
        qi = int(q[i, 0])
        if qi == 0:
            t = (0.8, 0.9, 0.9, 0.5) if uni[i, 0] else (1.0, 0.55, 0.55, 0.9)
        elif bil[i, 0]:
            t = (0.85, 0.5, 0.5, 1.0)
        else:
            t = tuple(1.0 if code == qi else null if code == 0 else 0.0 for code in range(4))
        tables[i] = np.asarray(t, dtype=np.float32)
    hard = (stated & (c != q) & (c != 0)).astype(np.float32)
    return _lookup(tables, c), hard


def _contrast_many(ps: list[PreparedQuery], c: np.ndarray, scoring: ScoringConfig):
    """contrast_scores() for the batch."""
    null, mismatch = scoring.contrast_null_score, scoring.contrast_mismatch_score
    by_q = {
        0: (1.0, null, null, null, null),
        2: (0.95, mismatch, 1.0, mismatch, mismatch),
        1: (null, 1.0, mismatch, 0.8, mismatch),
        3: (null, 0.85, mismatch, 1.0, mismatch),
    }
    oral = (null, mismatch, mismatch, mismatch, 1.0)
    q = _row(ps, lambda p: p.q_contrast, np.int64)
    tables = np.array([np.asarray(by_q.get(int(v), oral), dtype=np.float32) for v in q[:, 0]])
    hard = ((q == 2) & ((c == 1) | (c == 3) | (c == 4))) | ((q == 1) & (c == 2))
    return _lookup(tables, c), hard.astype(np.float32)


def _action_many(ps: list[PreparedQuery], ca: np.ndarray, scoring: ScoringConfig):
    """action_scores() for the batch: each row takes the variant score() would pick for it."""
    q = _row(ps, lambda p: p.q_action, np.int64)
    excl = _row(ps, lambda p: p.exclusive_actions, np.int64)
    neutral = _row(ps, lambda p: p.q_interventional_neutral)
    unstated = (-scoring.action_unstated_penalty * (ca != 0)).astype(np.float32)
    shared = (ca & q) != 0
    conflict = (q & excl) != 0
    hard = ((ca != 0) & ~shared) | (conflict & ((ca & excl) != 0) & ((ca & q & excl) == 0))
    adj = np.where(shared, scoring.action_match_bonus, 0.0) - np.where(
        ca == 0, scoring.action_missing_penalty, 0.0
    )
    adj = np.where(q == 0, unstated, adj.astype(np.float32))
    adj = np.where(neutral, np.float32(0.0), adj).astype(np.float32)
    hard = (hard & (q != 0) & ~neutral).astype(np.float32)
    return adj, hard


def score_many(ps: list[PreparedQuery], scoring: ScoringConfig) -> list[RankOutput]:
    """:func:`score` for many prepared queries at once (same results, one set of array operations)."""
    ks = {max(1, min(int(scoring.retriever_top_k), len(p.idx))) for p in ps}
    if len(ks) != 1 or len(ps) < 2:
        return [score(p, scoring) for p in ps]
    try:
        return _score_batch(ps, scoring, ks.pop())
    except _MixedDtypes:
        return [score(p, scoring) for p in ps]


def _score_batch(ps: list[PreparedQuery], scoring: ScoringConfig, k: int) -> list[RankOutput]:
    wc, wf = scoring.weights_component, scoring.weights_final
    st = {
        name: _stack(ps, name, k, dt)
        for name, dt in (
            ("idx", np.int64), ("cand_modality", np.int8), ("cand_laterality", np.int8),
            ("cand_contrast", np.int8), ("anatomy", np.float32), ("technique", np.float32),
            ("lexical", np.float32), ("semantic", np.float32), ("coverage", np.float32),
            ("cand_generality", np.float32), ("cand_interventional", bool), ("shared_context", np.int8),
            ("extra_words", np.float32), ("same_content", bool), ("cand_action", np.int32),
            ("cand_has_anatomy", bool),
        )
    }  # fmt: skip
    q_mod = _row(ps, lambda p: p.q_modality, np.int64)
    mod = modality_matrix(scoring)[q_mod, st["cand_modality"]]
    lat, lat_hard = _laterality_many(ps, st["cand_laterality"], scoring)
    con, con_hard = _contrast_many(ps, st["cand_contrast"], scoring)
    anat, tech = st["anatomy"], st["technique"]
    component = (
        wc.anatomy * anat + wc.modality * mod + wc.laterality * lat + wc.contrast * con + wc.technique * tech
    )
    semantic = (0.3 * st["lexical"] + 0.3 * st["semantic"] + 0.4 * st["coverage"]).astype(np.float32)
    total = wf.component * component + wf.semantic * semantic + wf.frequency * st["cand_generality"]
    cand_int = st["cand_interventional"]
    neutral = _row(ps, lambda p: p.q_interventional_neutral)
    q_int = _row(ps, lambda p: p.q_interventional)
    inter = np.where(cand_int, scoring.interventional_bonus, scoring.interventional_penalty)
    # score() adds this float64 term on interventional rows only; the context term below is float64
    # (an int8 count times a float) on every row, so both paths are float64 from here on.
    total = total.astype(np.float64) + np.where(q_int & ~neutral, inter, 0.0)
    total = total + scoring.context_match_bonus * st["shared_context"]
    total = total * np.maximum(1.0 - scoring.specificity_penalty_weight * st["extra_words"], 0.3)
    same = st["same_content"] & (con >= 0.95) & (tech >= 0.99)
    total = total + scoring.synonym_match_bonus * same
    exact = same & (lat == 1.0) & (con == 1.0) & (mod == 1.0)
    total = total + scoring.exact_match_bonus * exact
    act, act_hard = _action_many(ps, st["cand_action"], scoring)
    total = total + act
    has_anat = _row(ps, lambda p: bool(p.components.anatomy) and len(p.cand_has_anatomy) > 0)
    total = total - scoring.anatomy_mismatch_penalty * (has_anat & st["cand_has_anatomy"] & (anat <= 0.0))
    ident = _row(ps, lambda p: p.q_identity_technique and not p.q_action)
    total = total - scoring.technique_missing_penalty * (ident & (tech <= 0.0))
    cand_con = st["cand_contrast"]
    q_con0 = _row(ps, lambda p: p.q_contrast == 0)
    total = total - scoring.contrast_unstated_penalty * (q_con0 & ((cand_con == 1) | (cand_con == 3)))
    by_code = _row(ps, lambda p: p.q_modality_source == "code" and p.q_modality != MODALITIES["IR"])
    total = total - scoring.code_modality_penalty * (by_code & (mod < 0.65))
    hard = lat_hard + con_hard + act_hard
    hard = hard + (~q_int & ~neutral & cand_int).astype(np.float32)
    by_text = _row(ps, lambda p: p.q_modality_source == "text")
    hard = hard + (by_text & (mod < 0.65)).astype(np.float32)
    lat_unstated = _row(ps, lambda p: p.q_laterality == 0 and not p.q_unilateral)
    cand_lat = st["cand_laterality"]
    side_only = lat_unstated & ((cand_lat == 1) | (cand_lat == 2))
    total = total - scoring.laterality_unstated_penalty * side_only
    total = np.maximum(total, 0.0) - HARD_PENALTY * hard
    return _split(st["idx"], total, anat, mod, lat, con, tech, semantic, hard)


def _split(idx, total, anat, mod, lat, con, tech, semantic, hard) -> list[RankOutput]:
    """Sort each row as score() does (rounded score, then catalogue row) and cut the batch into rows."""
    b, k = total.shape
    rows = np.repeat(np.arange(b), k)
    flat = np.lexsort((idx.ravel(), -np.round(total, 6).ravel(), rows))
    order = flat.reshape(b, k) - (np.arange(b) * k)[:, None]

    def take(a: np.ndarray) -> np.ndarray:
        return np.take_along_axis(a, order, axis=1)

    cols = [take(a) for a in (total, anat, mod, lat, con, tech, semantic, hard)]
    names = ("anatomy", "modality", "laterality", "contrast", "technique")
    return [
        RankOutput(
            order=order[i],
            scores=cols[0][i],
            component={n: c[i] for n, c in zip(names, cols[1:6], strict=True)},
            semantic=cols[6][i],
            hard=cols[7][i],
        )
        for i in range(b)
    ]
