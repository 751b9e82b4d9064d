"""Features of one lookup answer for the correctness model: what the engine knew when it chose its top
row (raw score, margin, which slots the name stated and whether the row agrees, unknown words, learned
shorthand, ...). Cheap per result (a few array reads and set look-ups), so lookups stay fast.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from nhs_lookup.records import Candidate, ExamQuery
from nhs_lookup.retrieval import IDENTITY_TECHNIQUES
from nhs_lookup.scoring import PreparedQuery
from nhs_lookup.scoring import calibrate as raw_confidence
from nhs_lookup.vocab import default_vocabulary

FEATURES: tuple[str, ...] = (
    "raw_logit",  # the built-in confidence as a log-odds
    "top_score",
    "margin",  # top minus second score, capped
    "hard",  # the top row breaks a hard constraint
    "near_ties",  # alternatives within 0.05 of the top score
    "modality_in_text",  # the name states its modality (not only the RIS code)
    "modality_agree",
    "anatomy_stated",
    "anatomy_score",
    "laterality_stated",
    "laterality_agree",
    "contrast_stated",
    "contrast_agree",
    "action_stated",
    "action_agree",
    "technique_stated",
    "technique_agree",
    "interventional",
    "coverage",  # share of the name's content words found in the row
    "extra_words",  # row words the name does not state
    "same_content",  # synonym-level match of the content words
    "semantic",
    "content_words",
    "unknown_words",  # words neither the catalogue nor the vocabulary knows
    "learned_term",  # a learned shorthand token occurs in the name
    "modality_only",
    "review_flag",  # ambiguous, or the row does not carry a stated side / contrast / modality
    "unresolved",  # the name is silent on what separates the top row from a close competitor
)
# The correctness model's default inputs: the raw score and two review bits (see ``review_flag`` and
# ``unresolved``); the previous default without ``unresolved`` is kept for comparison.
DEFAULT_INPUTS: tuple[str, ...] = ("raw_logit", "review_flag", "unresolved")
FLAGGED_INPUTS: tuple[str, ...] = ("raw_logit", "review_flag")
AMBIGUITY_MARGIN = 0.05  # LookupConfig.ambiguity_margin's default
MARGIN_CAP = 0.5
NEAR_TIE = 0.05
# A competitor this close to the top row that differs from it only in a slot the name leaves open (the
# guidance modality of a procedure booked under a RIS code) makes the choice a guess, whatever the score.
SPLIT_WINDOW = 0.15
# Technique tags that do not define a study (a row "guided", "view", "screening" states no more than
# the name's action or modality already does).
NON_DEFINING_TECHNIQUES = frozenset({"guided", "view", "screening"})
# Techniques that define a study (a plain CT of the head is not a CT angiogram of it): a stated one the
# top row lacks leaves the answer unresolved. The same set scoring uses for its missing-technique penalty.
DEFINING_TECHNIQUES = IDENTITY_TECHNIQUES
# Context groups that restate the procedure (the action slot covers them), not the patient's state.
PROCEDURE_CONTEXTS = frozenset({"intervention"})
_WORD = re.compile(r"[a-z0-9]+")


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


def _position(p: PreparedQuery, row: int) -> int | None:
    hits = np.flatnonzero(p.idx == row)
    return int(hits[0]) if len(hits) else None


def _at(arr: np.ndarray, pos: int | None, default: float = 0.0) -> float:
    return float(arr[pos]) if pos is not None and pos < len(arr) else default


def unknown_count(clean_text: str, known: Collection[str]) -> int:
    """Alphabetic words of the parsed text that the parser's lexicon does not hold."""
    return sum(1 for w in clean_text.split() if w.isalpha() and len(w) > 1 and w not in known)


def review_flag(margin: float, p: PreparedQuery, comp: dict[str, float]) -> bool:
    """An answer a person should see whatever its score: a near tie with the second row, or a row that
    does not carry what the name states (its side, its contrast, its modality). A stated technique the
    row lacks was tried too: no clear gain in cross-validation (docs/nhs_lookup_framework.md)."""
    return (
        margin < AMBIGUITY_MARGIN
        or (p.q_laterality != 0 and comp.get("laterality", 0.0) < 0.99)
        or (p.q_contrast != 0 and comp.get("contrast", 0.0) < 0.95)
        or comp.get("modality", 0.0) < 0.99
    )


def _modality_split(p: PreparedQuery, cands: Sequence[Candidate], window: float) -> bool:
    """A candidate within *window* of the top row names another modality with the same anatomy, side,
    contrast and technique, while the name's modality comes only from the RIS code (an "IR" or "Other"
    booking of a biopsy or drainage: fluoroscopic, CT or ultrasound guidance is not stated)."""
    if p.q_modality_source == "text" or len(cands) < 2:
        return False
    top = cands[0]
    t = top.entry.components
    for c in cands[1:]:
        if top.score - c.score > window:
            break
        e = c.entry.components
        if (
            e.modality != t.modality
            and set(e.anatomy) == set(t.anatomy)
            and e.laterality == t.laterality
            and e.contrast == t.contrast
            and set(e.technique) - NON_DEFINING_TECHNIQUES == set(t.technique) - NON_DEFINING_TECHNIQUES
        ):
            return True
    return False


@lru_cache(maxsize=8192)
def _row_contexts(clean_text: str) -> frozenset[str]:
    """Clinical-context groups (``noise.yaml`` ``context_groups``: transplant, pregnancy, paediatric,
    screening, ...) a catalogue row states, from its parsed (normalised) name as the engine keeps it, so
    both sides are normalised alike; procedure groups excluded."""
    words = set(clean_text.split())
    groups = default_vocabulary().context_groups
    return frozenset(g for g, ws in groups.items() if g not in PROCEDURE_CONTEXTS and ws & words)


def unresolved(p: PreparedQuery, cands: Sequence[Candidate], window: float = SPLIT_WINDOW) -> bool:
    """The name and the top row do not settle the same study: the row defines a technique (angiography,
    cardiac gating, Doppler, ...) or a clinical context (a transplanted organ, pregnancy, ...) the name
    does not state; the name states a defining technique (angiography, venography, ...) the row lacks; or
    a close competitor differs from the row only in a modality the name leaves to the RIS code. Such
    answers go to review whatever their score."""
    if not cands:
        return False
    top = cands[0].entry
    row_tech = set(top.components.technique) - NON_DEFINING_TECHNIQUES
    if row_tech and not p.components.technique:
        return True
    if (set(p.components.technique) & DEFINING_TECHNIQUES) - row_tech:
        return True
    row_ctx = _row_contexts(top.components.clean_text)
    if row_ctx:
        words = set(p.components.clean_text.split())
        groups = default_vocabulary().context_groups
        if any(not groups[g] & words for g in row_ctx):
            return True
    return _modality_split(p, cands, window)


def cheap_features(
    names: Sequence[str], p: PreparedQuery, cands: Sequence[Candidate], hard: float
) -> list[float] | None:
    """*names* computed directly when they are among :data:`DEFAULT_INPUTS` (the default model: a few
    microseconds per answer); None otherwise (use :func:`result_features`)."""
    if not _CHEAP.issuperset(names):
        return None
    top = cands[0]
    margin = top.score - (cands[1].score if len(cands) > 1 else 0.0)
    out = []
    for name in names:
        if name == "raw_logit":
            out.append(_logit(raw_confidence(top.score, margin, min(float(hard), 1.0))))
        elif name == "review_flag":
            out.append(float(review_flag(margin, p, top.component_scores)))
        else:
            out.append(float(unresolved(p, cands)))
    return out


_CHEAP = frozenset(DEFAULT_INPUTS)


def result_features(
    p: PreparedQuery,
    cands: Sequence[Candidate],
    hard: float,
    query: ExamQuery | None,
    known: Collection[str],
    learned: Collection[str] = (),
) -> list[float]:
    """The :data:`FEATURES` vector of the answer whose ranked candidates are *cands* (best first)."""
    top = cands[0]
    second = cands[1].score if len(cands) > 1 else 0.0
    margin = top.score - second
    comp = top.component_scores
    pos = _position(p, top.entry.row_id)
    q_action = int(p.q_action)
    cand_action = int(_at(p.cand_action, pos)) if len(p.cand_action) else 0
    name = (query.exam_name if query is not None else "").lower()
    learned_hit = bool(learned) and any(t in learned for t in _WORD.findall(name))
    c = p.components
    return [
        _logit(raw_confidence(top.score, margin, min(float(hard), 1.0))),
        float(top.score),
        min(margin, MARGIN_CAP),
        float(hard > 0),
        float(sum(1 for x in cands[1:] if top.score - x.score < NEAR_TIE)),
        float(p.q_modality_source == "text"),
        float(comp.get("modality", 0.0) >= 0.99),
        float(bool(c.anatomy)),
        float(comp.get("anatomy", 0.0)),
        float(p.q_laterality != 0),
        float(comp.get("laterality", 0.0) >= 0.99),
        float(p.q_contrast != 0),
        float(comp.get("contrast", 0.0) >= 0.95),  # "without" stated: the plain row agrees (0.95)
        float(q_action != 0),
        float(q_action != 0 and (q_action & cand_action) != 0),
        float(bool(c.technique)),
        float(comp.get("technique", 0.0) >= 0.99),
        float(p.q_interventional),
        _at(p.coverage, pos),
        min(_at(p.extra_words, pos), 3.0),
        _at(p.same_content, pos),
        float(top.semantic_score),
        float(min(p.q_content_n, 6)),
        float(min(unknown_count(c.clean_text, known), 3)),
        float(learned_hit),
        float(p.q_modality_only),
        float(review_flag(margin, p, comp)),
        float(unresolved(p, cands)),
    ]


def feature_rows(engine: Any, queries: Sequence[ExamQuery], learned: Collection[str] = ()) -> list[Any]:
    """(result, features or None) for each query: features for answers that come from the score."""
    prepared = engine.prepare_many(queries)
    known = engine.lexicon
    out = []
    for p, q in zip(prepared, queries, strict=True):
        r = engine.rank(p, query=q)
        feats = None
        if r.candidates:
            hard = 1.0 if r.candidates[0].notes else 0.0
            feats = result_features(p, r.candidates, hard, q, known, learned)
        out.append((r, feats))
    return out
