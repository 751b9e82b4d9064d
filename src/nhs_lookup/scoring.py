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
