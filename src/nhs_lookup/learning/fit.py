"""``fit``: learn a site's shorthand, a correctness model behind ``confidence``, the no-match threshold
and the auto-accept threshold from labelled cases.

Everything after the shorthand is fitted on out-of-fold answers: the cases are split into folds grouped
by normalised name; for each fold the shorthand is learned on the other folds and the engine answers the
held-out names, so the answers (and their features) are those of names the model has not seen. The
correctness model (a regularised logistic regression on the answer's features) is itself cross-fitted
over those folds before isotonic calibration, so the calibration sees honest scores too. The no-match
threshold is the calibrated probability below which abstaining maximises out-of-fold top-1 accuracy (a
gold no-match is right only as an abstention); the auto-accept threshold is the lowest calibrated
probability whose out-of-fold answers reach the target precision. Every random choice takes the seed.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from nhs_lookup.metrics import TARGET_PRECISION, auto_accept
from nhs_lookup.records import Case
from nhs_lookup.vocab import default_vocabulary

from .associations import MIN_SHARE, MIN_SUPPORT, Association, as_vocabulary, learn_associations
from .calibration import (
    LOGISTIC_C,
    LOGISTIC_C_MANY,
    Calibration,
    CorrectnessModel,
    IsotonicCalibrator,
    LogisticScore,
)
from .crossval import grouped_folds
from .features import DEFAULT_INPUTS, FEATURES, FLAGGED_INPUTS, feature_rows
from .model import LookupModel, catalogue_fingerprint, now_utc, training_hash

SCORED = (None, "low_confidence")  # answers that come from the score (rule-based abstentions excluded)
# The correctness model's inputs: the raw confidence and the two review bits (default), the raw confidence
# and the review flag only (the previous default), every feature, or the raw confidence alone (isotonic
# only, the format-1 model).
CORRECTNESS: dict[str, tuple[str, ...]] = {
    "unresolved": DEFAULT_INPUTS,
    "flagged": FLAGGED_INPUTS,
    "features": FEATURES,
    "isotonic": (),
}
MIN_LOGISTIC_ANSWERS = 30  # fewer out-of-fold answers: isotonic on the raw confidence only


@dataclass
class FitOptions:
    folds: int = 5  # inner folds for out-of-fold calibration
    seed: int = 0
    min_support: int = MIN_SUPPORT
    min_share: float = MIN_SHARE
    calibrate: bool = True
    correctness: str = "unresolved"  # a key of CORRECTNESS
    target_precision: float = TARGET_PRECISION


@dataclass
class OutOfFold:
    """Each scored out-of-fold answer: raw confidence, top-candidate correctness, gold no-match, features
    and the inner fold it was held out in."""

    raw: list[float] = field(default_factory=list)
    top_ok: list[bool] = field(default_factory=list)
    gold_no_match: list[bool] = field(default_factory=list)
    features: list[list[float]] = field(default_factory=list)
    fold: list[int] = field(default_factory=list)


def _engine(base: Any, vocab: dict[str, str], calibrator: Any, min_confidence: float) -> Any:
    from nhs_lookup.engine import LookupEngine

    cfg = copy.deepcopy(base.config)
    cfg.min_confidence = min_confidence
    return LookupEngine(cfg, base.catalogue, base.index, extra_vocabulary=vocab, calibrator=calibrator)


def lexicon_of(base: Any) -> frozenset[str]:
    """What the parser already knows: catalogue words and the bundled vocabulary's phrase words."""
    vocab = default_vocabulary()
    return base.catalogue.lexicon() | frozenset(w for p in vocab.phrases for w in p.split())


def learn(base: Any, cases: Sequence[Case], opts: FitOptions) -> list[Association]:
    return learn_associations(cases, lexicon_of(base), min_support=opts.min_support, min_share=opts.min_share)


def _collect(into: OutOfFold, engine: Any, cases: Sequence[Case], learned: dict[str, str], fold: int) -> None:
    rows = feature_rows(engine, [c.query for c in cases], learned)
    for case, (res, feats) in zip(cases, rows, strict=True):
        if res.no_match_reason not in SCORED or feats is None:
            continue
        into.raw.append(float(res.confidence))
        top = res.candidates[0].entry.name.casefold()
        into.top_ok.append(not case.no_match and top in {a.casefold() for a in case.acceptable})
        into.gold_no_match.append(case.no_match)
        into.features.append(feats)
        into.fold.append(fold)


def out_of_fold(base: Any, cases: Sequence[Case], opts: FitOptions) -> tuple[OutOfFold, str]:
    """Raw (uncalibrated) answers for every case from a model fitted without its name."""
    oof = OutOfFold()
    distinct = len({c.query.exam_name.casefold() for c in cases})
    k = min(opts.folds, distinct)
    if k < 2:
        vocab = as_vocabulary(learn(base, cases, opts))
        _collect(oof, _engine(base, vocab, None, 0.0), cases, vocab, 0)
        return oof, "too few distinct names for out-of-fold calibration: calibrated in-sample"
    for i, fold in enumerate(grouped_folds(cases, k, opts.seed)):
        vocab = as_vocabulary(learn(base, [cases[j] for j in fold.train], opts))
        _collect(oof, _engine(base, vocab, None, 0.0), [cases[j] for j in fold.test], vocab, i)
    return oof, f"calibrated on out-of-fold answers ({k} folds grouped by name)"


def choose_threshold(probabilities: Sequence[float], oof: OutOfFold) -> float:
    """The abstention threshold (abstain when p < t) that maximises out-of-fold top-1 accuracy; the
    lowest such threshold on ties. An abstention is right only for a gold no-match."""
    pairs = sorted(zip(probabilities, oof.top_ok, oof.gold_no_match, strict=True))
    score = sum(ok for _, ok, _ in pairs)  # t = 0: answer everything
    best_score, best_t = score, 0.0
    for i, (p, ok, nm) in enumerate(pairs):
        if i and p > pairs[i - 1][0] and score > best_score:
            best_score, best_t = score, p  # abstain on everything below p
        score += nm - ok
    return round(best_t, 6)


def cross_fitted_scores(
    X: np.ndarray, y: Sequence[bool], folds: Sequence[int], seed: int, c: float = LOGISTIC_C
) -> np.ndarray:
    """Logistic scores of each answer from a model fitted on the other inner folds only."""
    out = np.zeros(len(y))
    ids = np.asarray(folds)
    yy = np.asarray(y, dtype=bool)
    for f in np.unique(ids):
        held = ids == f
        out[held] = LogisticScore.fit(X[~held], yy[~held], c, seed).predict(X[held])
    return out


def with_accept(cal: Any, probs: Sequence[float], oof: OutOfFold, opts: FitOptions) -> Any:
    """*cal* carrying the auto-accept threshold chosen on the calibrated out-of-fold answers: the lowest
    probability at which their precision reaches the target (None when none does)."""
    _, t = auto_accept(list(zip(probs, oof.top_ok, strict=True)), opts.target_precision)
    return replace(cal, auto_accept_threshold=None if t is None else round(t, 6))


def fit_calibration(oof: OutOfFold, opts: FitOptions) -> tuple[Calibration, list[float], str]:
    """The calibration map and the calibrated out-of-fold probabilities (for the thresholds)."""
    if opts.correctness not in CORRECTNESS:
        raise ValueError(f"correctness model must be one of {sorted(CORRECTNESS)}, got {opts.correctness!r}")
    inputs = CORRECTNESS[opts.correctness]
    if not inputs or len(oof.raw) < MIN_LOGISTIC_ANSWERS or len(set(oof.fold)) < 2:
        iso = IsotonicCalibrator.fit(oof.raw, oof.top_ok)
        probs = [iso.probability(r) for r in oof.raw]
        return with_accept(iso, probs, oof, opts), probs, "isotonic on the raw confidence"
    X = np.asarray(oof.features, dtype=float)[:, [FEATURES.index(f) for f in inputs]]
    c = LOGISTIC_C if len(inputs) <= len(DEFAULT_INPUTS) else LOGISTIC_C_MANY
    scores = cross_fitted_scores(X, oof.top_ok, oof.fold, opts.seed, c)
    iso = IsotonicCalibrator.fit(scores.tolist(), oof.top_ok, input="correctness model score")
    probs = [iso.probability(float(s)) for s in scores]
    model = CorrectnessModel(inputs, LogisticScore.fit(X, oof.top_ok, c, opts.seed), iso)
    return (
        with_accept(model, probs, oof, opts),
        probs,
        f"correctness model: logistic on {', '.join(inputs)} (cross-fitted), then isotonic",
    )


def fit_model(
    base: Any,
    cases: Sequence[Case],
    opts: FitOptions | None = None,
    *,
    files: Sequence[str] = (),
    review_decisions: int = 0,
) -> LookupModel:
    """Fit on labelled *cases* with *base* (an engine on the target catalogue)."""
    import nhs_lookup

    opts = opts or FitOptions()
    labelled = [c for c in cases if c.labelled]
    if not labelled:
        raise ValueError("no labelled cases to fit on (needs 'acceptable' or 'no_match')")
    associations = learn(base, labelled, opts)
    calibrator, threshold = None, base.config.min_confidence
    notes: list[str] = []
    if opts.calibrate:
        oof, note = out_of_fold(base, labelled, opts)
        notes.append(note)
        if oof.raw:
            calibrator, probs, how = fit_calibration(oof, opts)
            notes.append(how)
            threshold = choose_threshold(probs, oof)
    cfg = copy.deepcopy(base.config)
    cfg.cache_dir = None
    cfg.catalogue_path = None
    return LookupModel(
        config=cfg.to_dict(),
        associations=associations,
        calibration=calibrator,
        no_match_threshold=threshold,
        catalogue={
            "fingerprint": catalogue_fingerprint(base.catalogue),
            "path": base.catalogue.source_path,
            "rows": len(base.catalogue),
        },
        vocabulary_version=default_vocabulary().fingerprint,
        training={
            "hash": training_hash(labelled),
            "cases": len(labelled),
            "no_match_cases": sum(c.no_match for c in labelled),
            "files": list(files),
            "review_decisions": review_decisions,
            "options": {
                "folds": opts.folds,
                "seed": opts.seed,
                "min_support": opts.min_support,
                "min_share": opts.min_share,
                "correctness": opts.correctness,
            },
        },
        package_version=nhs_lookup.__version__,
        created_utc=now_utc(),
        notes=notes,
    )


def fitted_engine(base: Any, cases: Sequence[Case], opts: FitOptions | None = None) -> Any:
    """The engine a model fitted on *cases* gives (used by cross-validation for each fold)."""
    from .model import engine_with

    return engine_with(base, fit_model(base, cases, opts))
