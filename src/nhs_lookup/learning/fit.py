"""``fit``: learn a site's shorthand, a calibration map and the no-match threshold from labelled cases.

Calibration is fitted on out-of-fold answers: the cases are split into folds grouped by normalised name;
for each fold the shorthand is learned on the other folds and the engine answers the held-out names, so
the raw confidences it calibrates are those of names the model has not seen. The no-match threshold is
the calibrated probability below which abstaining maximises out-of-fold top-1 accuracy (a gold no-match
is right only as an abstention). Every random choice takes the seed.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from nhs_lookup.records import Case, LookupResult
from nhs_lookup.vocab import default_vocabulary

from .associations import MIN_SHARE, MIN_SUPPORT, Association, as_vocabulary, learn_associations
from .calibration import IsotonicCalibrator
from .crossval import grouped_folds
from .model import LookupModel, catalogue_fingerprint, now_utc, training_hash

SCORED = (None, "low_confidence")  # answers that come from the score (rule-based abstentions excluded)


@dataclass
class FitOptions:
    folds: int = 5  # inner folds for out-of-fold calibration
    seed: int = 0
    min_support: int = MIN_SUPPORT
    min_share: float = MIN_SHARE
    calibrate: bool = True


@dataclass
class OutOfFold:
    """Raw confidence, top-candidate correctness and gold no-match of each scored out-of-fold answer."""

    raw: list[float] = field(default_factory=list)
    top_ok: list[bool] = field(default_factory=list)
    gold_no_match: list[bool] = field(default_factory=list)


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


def _collect(into: OutOfFold, cases: Sequence[Case], results: Sequence[LookupResult]) -> None:
    for case, res in zip(cases, results, strict=True):
        if res.no_match_reason not in SCORED or not res.candidates:
            continue
        into.raw.append(float(res.confidence))
        top = res.candidates[0].entry.name.casefold()
        into.top_ok.append(not case.no_match and top in {a.casefold() for a in case.acceptable})
        into.gold_no_match.append(case.no_match)


def out_of_fold(base: Any, cases: Sequence[Case], opts: FitOptions) -> tuple[OutOfFold, str]:
    """Raw (uncalibrated) answers for every case from a model fitted without its name."""
    oof = OutOfFold()
    distinct = len({c.query.exam_name.casefold() for c in cases})
    k = min(opts.folds, distinct)
    if k < 2:
        results = _engine(base, as_vocabulary(learn(base, cases, opts)), None, 0.0).lookup_many(
            [c.query for c in cases]
        )
        _collect(oof, cases, results)
        return oof, "too few distinct names for out-of-fold calibration: calibrated in-sample"
    for fold in grouped_folds(cases, k, opts.seed):
        train = [cases[i] for i in fold.train]
        test = [cases[i] for i in fold.test]
        eng = _engine(base, as_vocabulary(learn(base, train, opts)), None, 0.0)
        _collect(oof, test, eng.lookup_many([c.query for c in test]))
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
            calibrator = IsotonicCalibrator.fit(oof.raw, oof.top_ok)
            threshold = choose_threshold([calibrator.probability(r) for r in oof.raw], oof)
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
